"""The package list, which pyproject.toml cannot express: every package under ecgcore/, plus
the experiment presets. Those stay in experiments/ at the top of the checkout (README and
docs run `python -m ecgcore run experiments/quickstart.toml`); an installed package carries
them as ecgcore/presets/*.toml, found through `ecgcore.package_paths.preset`."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ecgcore", "ecgcore.*"]), "ecgcore.presets"],
    package_dir={"ecgcore.presets": "experiments"},
    package_data={"ecgcore.presets": ["*.toml"]},
)
