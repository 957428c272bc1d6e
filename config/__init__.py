"""Site configuration: the TOML schema, its strict loader and the bundled example sites."""

from config.loader import ConfigError, load_site
from config.schema import SiteConfig

__all__ = ["ConfigError", "SiteConfig", "load_site"]
