"""``boardgraph browse``: a static HTML site of a trained run, to look at what the model does:
pin pages with their nearest pins, board pages with their completion and held-out pins, a map
of the embedding and a title search. It opens from disk, offline (:func:`build_site`)."""
from .projection import PROJECTIONS, ProjectionError, project_2d
from .site import MARKER, BrowseOptions, SiteError, SiteReport, build_site, site_server
from .thumbs import ThumbReport, write_thumbnails

__all__ = ["BrowseOptions", "SiteReport", "SiteError", "build_site", "site_server", "MARKER", "PROJECTIONS",
           "ProjectionError", "project_2d", "ThumbReport", "write_thumbnails"]
