"""The merchant pages: upload a catalog, watch it import and embed, fix the rows that failed.

Opt in with ``path("merchant/", include("p2w_search.merchant.urls"))`` (namespace
``p2w_merchant``). The pages are doors onto the same rules as the upload API
(p2w_search/api/uploads.py): the same serializer validates an upload, the same query
decides which jobs a user sees, the same view serves their files. They need
``P2W_SEARCH["IMPORT_SERIALIZER"]``; its optional class methods ``products(merchant)``,
``merchants_for_staff(user)`` and ``example_row()`` add the catalog at a glance, the
staff's choice of merchant and the template's example row.

Templates live under ``p2w_search/merchant/`` (``base.html`` is the one a shop overrides to
put the pages in its own layout; ``not_found.html`` and ``forbidden.html`` say why a job or a
file is refused, in the API's words); ``p2w_search/merchant.js`` polls a job's progress.
"""
