"""Merchants' catalog uploads: a manifest (CSV or JSON Lines) and a zip of images.

``manifest`` reads a manifest row by row, ``archive`` checks and reads the zip, ``importer``
runs an import job in one transaction, ``storage`` keeps uploads private and for a limited time.
"""
