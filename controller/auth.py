"""Roles from the caller's Unix identity: viewer < operator < technician, from the site's [access] table."""

from __future__ import annotations

import grp
import os
import pwd
from enum import IntEnum

from config.schema import AccessSection


class Role(IntEnum):
    """Cumulative roles; NONE may do nothing."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    TECHNICIAN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


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
