"""Datasets: the embedded synthetic lookbooks and loaders for real collections data."""
from .polyvore import PolyvoreData, load_polyvore
from .steam import SteamData, load_steam_bundles
from .synthetic import LookbookTables, make_lookbook_tables, synthetic_lookbooks

__all__ = ["synthetic_lookbooks", "make_lookbook_tables", "LookbookTables", "load_polyvore", "PolyvoreData",
           "load_steam_bundles", "SteamData"]
