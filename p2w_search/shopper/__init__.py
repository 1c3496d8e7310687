"""The shopper's "like this, but ..." journey for any shop's pages: a product or the shopper's own photo, changed in
words.

``journey`` runs it from a request (the search service underneath), ``forms`` reads the
shopper's input, ``views.PhotoSearchView`` takes a photo upload, and the template tags of
``{% load p2w_search %}`` render the boxes and results (templates under
``p2w_search/like_this/``, overridable).
"""
