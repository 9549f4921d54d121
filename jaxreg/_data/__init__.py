"""Data sets and pure data-handling functions; public names in :mod:`jaxreg.datasets`."""
