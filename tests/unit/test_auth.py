"""Roles from Unix identity: root and the daemon's user are technicians; others by user or @group entries."""

from __future__ import annotations

import grp
import pwd

from config.schema import AccessSection
from controller.auth import Role, role_for

NOBODY = pwd.getpwnam("nobody")


def test_root_and_daemon_owner_are_technicians():
    assert role_for(0, 0, AccessSection(), daemon_uid=1234) is Role.TECHNICIAN
    assert role_for(NOBODY.pw_uid, NOBODY.pw_gid, AccessSection(), daemon_uid=NOBODY.pw_uid) is Role.TECHNICIAN


def test_unlisted_user_has_no_role():
    assert role_for(NOBODY.pw_uid, NOBODY.pw_gid, AccessSection(technician=["someone"]), daemon_uid=0) is Role.NONE


def test_user_entry_and_highest_role_wins():
    access = AccessSection(viewer=["nobody"], operator=["nobody"])
    assert role_for(NOBODY.pw_uid, NOBODY.pw_gid, access, daemon_uid=0) is Role.OPERATOR


def test_group_entry():
    group = grp.getgrgid(NOBODY.pw_gid).gr_name
    access = AccessSection(viewer=[f"@{group}"])
    assert role_for(NOBODY.pw_uid, NOBODY.pw_gid, access, daemon_uid=0) is Role.VIEWER
    assert role_for(NOBODY.pw_uid, NOBODY.pw_gid, AccessSection(viewer=["@no-such-group"]), daemon_uid=0) is Role.NONE


def test_roles_are_ordered():
    assert Role.NONE < Role.VIEWER < Role.OPERATOR < Role.TECHNICIAN
