"""Where the public vendor files come from, for a user who names one that is not there.

Pure look-up by format or file name: a missing ``UserBehavior.csv.gz`` gets the data set's
public source and the copy the shared data folder (``PROPENSITY_SHARED_DATA``) may hold,
rather than a bare "no such file". Sources are the publishers' pages (docs/data.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class VendorFile:
    data_set: str
    source: str
    #: The copy in the shared data folder, relative to it, when it holds one.
    shared_copy: str | None
    #: The file names it is published under (lower case, without ``.gz``), as a regex.
    names: str
    #: The ``--format`` that reads it (None: a mapping file).
    format: str | None = None
    #: A name too generic to recognise alone (``events.csv``): matched only with its format.
    needs_format: bool = False


VENDOR_FILES = (
    VendorFile(
        "Alibaba Taobao UserBehavior (Tianchi data set 649)",
        "https://tianchi.aliyun.com/dataset/649",
        "taobao_userbehavior/UserBehavior_head_814users.csv.gz",
        r"userbehavior.*\.csv",
        "taobao",
    ),
    VendorFile(
        "REES46 eCommerce behavior data from multi category store (Kaggle)",
        "https://www.kaggle.com/datasets/mkechinov/ecommerce-behavior-data-from-multi-category-store",
        "rees46/2019-Oct_head.csv.gz",
        r"20\d\d-[a-z]{3}.*\.csv",
        "rees46",
    ),
    VendorFile(
        "RetailRocket e-commerce dataset (Kaggle)",
        "https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
        None,
        r"events\.csv",
        "retailrocket",
        needs_format=True,
    ),
    VendorFile(
        "UCI Online Retail (read with examples/mappings/uci_online_retail.toml)",
        "https://archive.ics.uci.edu/dataset/352/online+retail",
        "uci_online_retail/online_retail_2010_2011.csv.gz",
        r"online[ _]retail.*\.(csv|xlsx)",
    ),
    VendorFile(
        "CDNOW purchases (Fader and Hardie)",
        "https://www.brucehardie.com/datasets/ (also in the lifetimes package)",
        "cdnow/CDNOW_master.txt.gz",
        r"cdnow_(master|sample)\.txt",
        "cdnow",
    ),
)


def vendor_file(path: str | PurePath, fmt: str | None = None) -> VendorFile | None:
    """The public data set a file name (or its ``--format``) belongs to, if any."""
    name = re.sub(r"\.gz$", "", PurePath(path).name.lower())
    for known in VENDOR_FILES:
        if re.fullmatch(known.names, name) and (not known.needs_format or fmt == known.format):
            return known
    return next((known for known in VENDOR_FILES if fmt and fmt == known.format), None)


def where_to_get(path: str | PurePath, fmt: str | None, shared_data: PurePath | None) -> str | None:
    """A hint for a missing vendor file: its public source and the shared copy, if any."""
    known = vendor_file(path, fmt)
    if known is None:
        return None
    hint = f"{PurePath(path).name} is the {known.data_set}, published at {known.source}"
    if known.shared_copy is None:
        return hint + "; download it from there"
    folder = str(shared_data) if shared_data is not None else "../shared/data"
    return (
        f"{hint}; the shared data folder (PROPENSITY_SHARED_DATA, here {folder}) may hold a "
        f"copy: {folder}/{known.shared_copy}"
    )
