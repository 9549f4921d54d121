"""The trainer: configs, the jitted epoch, `train`, `train_many`, optimizers and checkpoints.

Re-exported from :mod:`jaxreg`; nothing here is public by its module path.
"""
