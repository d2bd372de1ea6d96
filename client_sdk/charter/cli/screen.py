"""`charter screen`: which characters a prompt names, as prompt screening sees it."""

from __future__ import annotations

from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import settings
from charter.cli.authorize import JsonFlag, detection_json, print_detections


def screen(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt, at most 8000 characters.")],
    *,
    json_output: JsonFlag = False,
) -> None:
    """Screen a prompt against every character's names and aliases, opted in or not, in every script."""
    cli = settings(ctx)
    with cli.client() as client:
        detections = client.screen_prompt(prompt)
    if cli.json_output or json_output:
        _output.print_json([detection_json(d) for d in detections])
    else:
        print_detections(detections)
