"""``boardgraph browse``: a trained run -> a static HTML site to look at it (pins, their nearest
pins, boards and their completion, a map of the embedding, a title search)."""
from __future__ import annotations

import argparse

from boardgraph.cli._common import RAW
from boardgraph.graph import PinBoardGraph
from boardgraph.inference.browse import PROJECTIONS, BrowseOptions, build_site, site_server
from boardgraph.inference.run import load_run

__all__ = ["register"]

EPILOG_BROWSE = """examples:
  boardgraph browse runs/demo/neighbor_cf --out site            # then open site/index.html
  boardgraph browse runs/demo/neighbor_cf --out site --compare runs/demo/content --color-by category
  boardgraph browse runs/demo/neighbor_cf --out site --serve 8000
"""


def _cmd_browse(args: argparse.Namespace) -> int:
    opt = BrowseOptions(pins=args.pins, boards=args.boards, k=args.k, color_by=args.color_by,
                        projection=args.projection, map_points=args.map_points)
    run = load_run(args.run_dir, graph=PinBoardGraph.load(args.graph)) if args.graph else args.run_dir
    report = build_site(run, args.out, opt, compare=args.compare)
    print(report.summary())
    print(f"open {report.out.resolve() / 'index.html'} in a browser (it works offline, from disk)")
    if args.serve is not None:
        server = site_server(report.out, args.serve)
        print(f"serving {report.out} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``browse`` to the subcommands ``sub``."""
    b = sub.add_parser("browse", help="write a static HTML site of a trained run (pins, boards, a map, search)",
                       epilog=EPILOG_BROWSE, formatter_class=RAW)
    b.add_argument("run_dir", help="a trained run's folder (its run.out_dir)")
    b.add_argument("--out", required=True, help="site folder (new, empty, or a site written before)")
    b.add_argument("--graph", help="the saved graph the run was trained on, when its config does not name it "
                                   "(e.g. a run trained from Python on a graph built in memory)")
    b.add_argument("--compare", help="a second run on the same graph: pin pages show both runs' neighbours")
    b.add_argument("--pins", type=int, default=300, help="pin pages (a sample; default 300)")
    b.add_argument("--boards", type=int, default=100, help="board pages (a sample; default 100)")
    b.add_argument("--k", type=int, default=10, help="nearest pins and suggestions per page")
    b.add_argument("--color-by", help="pin feature colouring the map (default: each pin's first board)")
    b.add_argument("--projection", choices=sorted(PROJECTIONS), default="pca", help="map projection")
    b.add_argument("--map-points", type=int, default=2000, help="most pins on the map")
    b.add_argument("--serve", type=int, metavar="PORT", help="also serve the site on 127.0.0.1:PORT")
    b.set_defaults(fn=_cmd_browse)
