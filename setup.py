"""Only what pyproject.toml cannot say: the top-level ``locales/`` folder ships in the wheel
as the package ``bot.locales`` (the repository keeps ``locales/`` at the top level; see
bot/i18n.py for how both layouts are found). Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["bot", "bot.*"]), "bot.locales"],
    package_dir={"bot.locales": "locales"},
)
