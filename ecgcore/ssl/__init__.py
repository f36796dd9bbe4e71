"""Self-supervised pretraining: ECG augmentations (`augment`), contrastive and reconstruction
losses (`losses`), and the pretraining methods built on them.

Imports nothing heavy here: import the submodule you need (`ecgcore.ssl.augment`, ...).
"""
