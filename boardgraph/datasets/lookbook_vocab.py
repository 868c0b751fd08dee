"""The vocabulary of the synthetic lookbooks and the design of their hidden styles.

Words and colours (palettes, patterns, materials, categories, brand families, price bands and the
phrase lists titles and descriptions are drawn from) and :func:`design_styles`, step 1 of the
generative process described in :mod:`boardgraph.datasets.synthetic`.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PALETTES", "PATTERNS", "MATERIALS", "CATEGORIES", "BRAND_FAMILIES", "PRICE_BANDS", "PATTERN_PHRASES",
           "PATTERN_WORDS", "NOUNS", "CATEGORY_LOG_OFFSET", "TITLE_PREFIXES", "OPENERS", "FILLERS", "COLOUR_WORDS",
           "COLOUR_RGB", "design_styles"]

#: Palette name -> four (colour word, RGB) pairs.
PALETTES: dict[str, tuple[tuple[str, tuple[int, int, int]], ...]] = {
    "earth": (("rust", (183, 65, 14)), ("olive", (107, 112, 40)), ("camel", (193, 154, 107)),
              ("chocolate", (92, 58, 33))),
    "pastel": (("blush", (244, 194, 194)), ("lavender", (200, 180, 230)), ("mint", (170, 240, 209)),
               ("sky", (160, 200, 235))),
    "monochrome": (("black", (20, 20, 20)), ("white", (245, 245, 245)), ("grey", (128, 128, 128)),
                   ("charcoal", (60, 60, 60))),
    "nautical": (("navy", (20, 30, 90)), ("scarlet", (200, 30, 40)), ("cream", (250, 240, 200)),
                 ("cobalt", (0, 71, 171))),
    "neon": (("lime", (160, 255, 0)), ("magenta", (255, 0, 200)), ("cyan", (0, 230, 255)),
             ("tangerine", (255, 130, 0))),
    "jewel": (("emerald", (0, 120, 80)), ("sapphire", (15, 82, 186)), ("ruby", (155, 17, 30)),
              ("amethyst", (120, 60, 160))),
    "tropical": (("lemon", (245, 225, 50)), ("coral", (250, 120, 90)), ("teal", (0, 140, 140)),
                 ("turquoise", (64, 224, 208))),
    "berry": (("plum", (110, 30, 80)), ("burgundy", (128, 0, 32)), ("mauve", (190, 140, 170)),
              ("rose", (230, 100, 140))),
}
PATTERNS = ("solid", "stripes", "dots", "checks")
MATERIALS = ("cotton", "denim", "silk", "leather", "wool", "linen", "velvet", "knit")
CATEGORIES = ("top", "dress", "skirt", "trousers", "shoes", "bag")
#: Brand family -> its three brands. Up to 16 families, so ``n_styles <= 32``.
BRAND_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("Aldermoor", "Brisk & Co", "Cobble"), ("Dunmere", "Elowen", "Fernhollow"),
    ("Gildwick", "Harrowgate", "Islay Row"), ("Juniper Lane", "Kestrel", "Larchmont"),
    ("Marlowe", "Northby", "Oakhurst"), ("Pemberly", "Quillon", "Rosedale"),
    ("Saltmarsh", "Thistle", "Umber"), ("Vantage", "Wrenfield", "Yarrow"),
    ("Zephyrine", "Ashcombe", "Bellweather"), ("Corvid", "Driftwood", "Emberly"),
    ("Foxglove", "Greyfriar", "Hollins"), ("Ivorine", "Jasperine", "Kilnworth"),
    ("Lumen", "Mossgiel", "Nettlebed"), ("Orchardine", "Pinecrest", "Quarry"),
    ("Ravensworth", "Sorrel", "Tamsin"), ("Underhill", "Valerian", "Willowby"),
)
#: Price band -> centre price in dollars (log-normal around it, sd 0.3 in log space).
PRICE_BANDS = {"budget": 25.0, "mid": 60.0, "premium": 150.0, "luxury": 400.0}

PATTERN_PHRASES = {"solid": ("in a solid colour", "with no print"),
                    "stripes": ("with stripes", "in a striped print", "with pinstripes"),
                    "dots": ("with polka dots", "in a dotted print"),
                    "checks": ("in a check print", "with plaid checks", "in gingham")}
PATTERN_WORDS = {"solid": ("plain", "solid"), "stripes": ("striped", "stripes"),
                  "dots": ("polka dot", "dotty"), "checks": ("plaid", "gingham")}
NOUNS = {"top": ("top", "tee", "blouse"), "dress": ("dress", "midi dress", "sundress"),
          "skirt": ("skirt", "mini skirt", "pleated skirt"), "trousers": ("trousers", "pants", "chinos"),
          "shoes": ("sneakers", "boots", "loafers"), "bag": ("bag", "tote", "clutch")}
CATEGORY_LOG_OFFSET = np.array([-0.2, 0.1, -0.1, 0.0, 0.2, 0.25])
TITLE_PREFIXES = ("", "", "", "new ", "vintage ", "classic ", "oversized ", "everyday ")
OPENERS = ("A", "This", "Our", "A relaxed", "A tailored")
FILLERS = ("outfits", "inspo", "looks", "wardrobe", "ideas", "favourites", "wishlist", "style")
COLOUR_WORDS = [w for cols in PALETTES.values() for w, _ in cols]
COLOUR_RGB = np.array([rgb for cols in PALETTES.values() for _, rgb in cols], dtype=np.float32)


def design_styles(rng: np.random.Generator, n_styles: int) -> dict[str, np.ndarray]:
    """The noise-free attributes of each style (step 1 of :mod:`boardgraph.datasets.synthetic`).

    Returns:
        ``palette``, ``pattern``, ``material``, ``family`` (brand family) and ``band`` (price band):
        int64 ``[n_styles]`` indices into :data:`PALETTES`, :data:`PATTERNS`, :data:`MATERIALS`,
        :data:`BRAND_FAMILIES` and :data:`PRICE_BANDS`; ``cat_cdf``: float64 ``[n_styles, 6]``, the
        cumulative category mix of each style over :data:`CATEGORIES`.
    """
    s = np.arange(n_styles)
    g, a, b = s // 4, (s % 4) // 2, s % 2
    n_fam = math.ceil(n_styles / 2)
    pal = rng.permutation(len(PALETTES))[g]
    pat = rng.permutation(len(PATTERNS))[(2 * g + a) % len(PATTERNS)]
    mat = rng.permutation(len(MATERIALS))[(2 * g + b) % len(MATERIALS)]
    fam = rng.permutation(len(BRAND_FAMILIES))[s % n_fam]
    band_of_family = rng.permutation(np.arange(len(BRAND_FAMILIES)) % len(PRICE_BANDS))
    k = len(CATEGORIES)
    cat_p = 0.5 / k + 0.5 * rng.dirichlet(np.full(k, 0.5), size=n_styles)
    return {"palette": pal, "pattern": pat, "material": mat, "family": fam,
            "band": band_of_family[fam], "cat_cdf": np.cumsum(cat_p, axis=1)}
