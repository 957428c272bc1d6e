"""Roles from the caller's Unix identity: viewer < operator < technician, from the site's [access] table."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from config.schema import AccessSection
from controller.states import Role

__all__ = ["Caller", "Role", "role_for", "user_name"]


@dataclass(frozen=True)
class Caller:
    """Who sent a request (from SO_PEERCRED on the control socket), and the role the site gives them."""

    uid: int
    gid: int
    pid: int
    user: str
    role: Role

    def __post_init__(self) -> None:
        if isinstance(self.role, str):  # a role given by its name ("operator")
            object.__setattr__(self, "role", Role[self.role.upper()])


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def group_names(uid: int, gid: int) -> set[str]:
    """Names of the primary and supplementary groups of `uid`."""
    try:
        gids = set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        gids = {gid}
    names = set()
    for g in gids:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return names


def role_for(uid: int, gid: int, access: AccessSection, daemon_uid: int) -> Role:
    """The highest role any entry grants; root and the daemon's own user are technicians."""
    if uid in (0, daemon_uid):
        return Role.TECHNICIAN
    name = user_name(uid)
    groups = group_names(uid, gid)
    granted = Role.NONE
    for role, entries in (
        (Role.VIEWER, access.viewer),
        (Role.OPERATOR, access.operator),
        (Role.TECHNICIAN, access.technician),
    ):
        for entry in entries:
            matches = entry[1:] in groups if entry.startswith("@") else entry == name
            if matches:
                granted = max(granted, role)
    return granted
