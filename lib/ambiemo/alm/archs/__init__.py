"""One module per ALM architecture: its adapter subclass (alm/hf/adapter.py), its registry entries
(hub checkpoints of the models Jia et al. (2026) compare, and newer open ALMs) and the
builder of its tiny offline test checkpoint. Every module here is imported on
`import ambiemo.alm`, so adding an architecture is adding one file."""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")
