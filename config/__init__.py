"""Site configuration: the TOML schema, its strict loader and the bundled example sites.

`config.loader.load_site` validates with pydantic; `config.child_loader.load_site_in_child` runs it in a forked
child, so that a process (barrierd) gets the same site, or the same refusal, without ever importing pydantic.
"""

from config.errors import ConfigError
from config.schema import SiteConfig

__all__ = ["ConfigError", "SiteConfig"]
