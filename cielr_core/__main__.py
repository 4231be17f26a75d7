"""The command line: ``python -m cielr_core {edit,scene,bench,batch}``.

- ``edit IMAGE INSTRUCTION -o OUT``: the whole method (labels, perception, scene, refinement, plan,
  inpainting with a diffusers pipeline); writes the edited image and, next to it, the scene JSON,
  the scene preview, the refinement trace, the plan and the edited-region mask.
- ``scene IMAGE``: perception and the scene only (scene JSON and preview).
- ``bench DATASET_DIR --out DIR``: a benchmark run (see ``cielr_core.bench``).
- ``batch MANIFEST --out DIR``: every line of a JSONL manifest edited into a result folder (see
  ``cielr_core.batch``). ``bench`` and ``batch`` run on a Ray cluster with ``--ray``.

Each subcommand lives in ``cielr_core.cli`` (``edit`` and ``scene`` in ``edit``, ``bench`` and
``batch`` in modules of their names), what they share in ``cli.common`` and ``cli.run_options``;
this module builds the parser and runs the command.

Models and the LLM backend come from flags or a TOML file (``--config``; see ``cielr_core.config``).
Nothing is ever downloaded: the hub is switched off for this process. Errors a user can act on
(missing model, bad checkpoint, unreachable LLM, bad input) print one clear message on stderr and
exit with status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# Never download: set before any Hugging Face library is imported (they read these at import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from . import __version__
from .cli import batch, bench, edit
from .cli.common import CONFIG_HELP, Reporter
from .config import resolve_settings
from .errors import CIELRError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

log = logging.getLogger("cielr_core")

# ------------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cielr_core",
        description="CIELR: edit photos from complex instructions (perception -> scene -> LLM reasoning -> "
                    "plan -> masked inpainting), and benchmark it.",
        epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cielr_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{edit,scene,bench,batch}")
    sub.required = True

    edit.add_parsers(sub)
    bench.add_parser(sub)
    batch.add_parser(sub)
    return parser


COMMANDS = {"edit": edit.cmd_edit, "scene": edit.cmd_scene, "bench": bench.cmd_bench, "batch": batch.cmd_batch}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    reporter = Reporter(args.quiet)
    try:
        settings = resolve_settings(args)
        return COMMANDS[args.command](args, settings, reporter)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CIELRError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:
        if args.debug:
            raise
        text = " ".join(str(e).split())[:2000]
        print(f"error: {type(e).__name__}: {text}\n(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
