"""``devices``: list the account's logged-in devices, revoke one, or revoke all others."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output, dump
from samizdat.cli.render import table as render_table
from samizdat.cli.render import when
from samizdat.cli.session import logged_in
from samizdat.client import Profile
from samizdat.protocol.models import Device

devices_app = typer.Typer(
    help="Your logged-in devices. Without a subcommand: list them.",
    invoke_without_command=True,
)


async def _list(profile: Path) -> list[Device]:
    async with logged_in(profile) as client:
        return await client.devices()


@devices_app.callback()
def devices(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List your logged-in devices (the one marked * is this profile's)."""
    if ctx.invoked_subcommand is not None:
        return
    out = Output(json_, ctx.obj)
    found = out.run(_list(ctx.obj))
    table = render_table(
        "ID", "Name", "Logged in", "Last seen", "This", keep=("ID", "Logged in", "Last seen")
    )
    for device in found:
        table.add_row(
            str(device.id),
            escape(device.name),
            when(device.created_at),
            when(device.last_seen_at),
            "[green]*[/green]" if device.current else "",
        )
    out.rows((dump(d) for d in found), table, empty="No devices.")


async def _revoke(profile: Path, device_id: int) -> bool:
    """Revoke a device; True when it was this profile's own (then the profile is cleared)."""
    async with logged_in(profile) as client:
        assert client.session is not None
        if device_id != client.session.device_id:
            await client.revoke_device(device_id)
            return False
        await client.log_out()
    Profile(profile).clear()
    return True


@devices_app.command("revoke")
def revoke(
    ctx: typer.Context,
    device_id: Annotated[int, typer.Argument(help="The device id from `samizdat devices`")],
    json_: JsonFlag = False,
) -> None:
    """Log out one device now. Revoking this profile's own device is `samizdat logout`."""
    out = Output(json_, ctx.obj)
    own = out.run(_revoke(ctx.obj, device_id))
    out.result(
        {"ok": True, "device_id": device_id, "current": own},
        "Logged out this device." if own else f"Device {device_id} is logged out.",
    )


async def _revoke_others(profile: Path) -> int:
    async with logged_in(profile) as client:
        return await client.revoke_other_devices()


@devices_app.command("revoke-others")
def revoke_others(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Log out every device of yours except this one (e.g. after losing a phone)."""
    out = Output(json_, ctx.obj)
    count = out.run(_revoke_others(ctx.obj))
    out.result({"revoked": count}, f"Logged out {count} other device(s).")


__all__ = ["devices_app"]
