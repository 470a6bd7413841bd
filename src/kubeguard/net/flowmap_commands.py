"""`kubeguard flows --map FLOWS.jsonl`: the flow map of `dpi --flows-out` records as json, dot or html."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stderr
from kubeguard.cluster.podmap import PodMap, PodMapError
from kubeguard.net.flowmap import FlowMapError, build, to_dot, to_html


def flows_command(
    flows_map: Path = typer.Option(..., "--map", help="Flow records (the JSON lines of `kubeguard dpi --flows-out`)."),
    output: str = typer.Option("json", "-o", "--output", help="json | dot | html"),
    pods: Path = typer.Option(None, "--pods", help="Pods map: group pods into their workloads (controllers)."),
    out_file: Path = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """Workloads as nodes, edges with protocols, bytes and verdict counts."""
    try:
        if output not in ("json", "dot", "html"):
            raise UserError(f"--output: expected json, dot or html, got {output!r}")
        try:
            podmap = PodMap.from_file(pods) if pods is not None else None
        except PodMapError as exc:
            raise UserError(str(exc)) from exc
        fmap = build(flows_map, podmap)
        text = {"json": lambda: json.dumps(fmap.to_dict(), indent=2) + "\n", "dot": lambda: to_dot(fmap),
                "html": lambda: to_html(fmap)}[output]()
        if out_file is not None:
            try:
                out_file.write_text(text)
            except OSError as exc:
                raise UserError(f"{out_file}: cannot write: {exc.strerror or exc}") from exc
            stderr.print(f"flows: {len(fmap.nodes)} nodes, {len(fmap.edges)} edges written to {out_file}",
                         markup=False)
        else:
            print(text, end="")
    except (UserError, FlowMapError) as exc:
        die(str(exc), exc.code)
