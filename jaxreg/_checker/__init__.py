"""The derivation checker: `check`, `check_identity`, `check_update`, `tap`, reports and cases.

Re-exported from :mod:`jaxreg`; nothing here is public by its module path.
"""
