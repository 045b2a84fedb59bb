"""The types a bag's messages need: the bag's own definitions, then `options.msgdefs`, then ROS2 Humble."""

from __future__ import annotations

from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import get_types_from_idl, get_types_from_msg
from rosbags.typesys.store import Typestore

from rosbag_assets.io.bags import DEFAULT_TYPESTORE, BagReadError, describe_error
from rosbag_assets.steps.topic_tables.options import TopicTablesOptions


def complete_typestore(reader: AnyReader, msgtypes: set[str], options: TopicTablesOptions) -> Typestore:
    """The reader's typestore plus the types its bag carries no definition of.

    AnyReader registers a bag's own definitions but ignores its default typestore once any connection has
    one; `options.msgdefs` and then the default (ROS2 Humble) store fill what is still missing.
    """
    store = reader.typestore
    missing = {t for t in msgtypes if t not in store.fielddefs}
    if not missing:
        return store
    types: dict[str, Any] = {}
    for msgtype in sorted(missing & set(options.msgdefs)):
        text = options.msgdefs[msgtype]
        parse = get_types_from_idl if text.lstrip().startswith("module") else get_types_from_msg
        try:
            types.update(parse(text, msgtype) if parse is get_types_from_msg else parse(text))
        except Exception as exc:
            raise BagReadError(
                f"options.msgdefs[{msgtype!r}] does not parse ({describe_error(exc)})"
            ) from exc
    pending = list(missing - set(types))
    while pending:  # the defaults for what is still missing, with their dependencies
        msgtype = pending.pop()
        if msgtype in types or msgtype in store.fielddefs or msgtype not in DEFAULT_TYPESTORE.fielddefs:
            continue
        types[msgtype] = DEFAULT_TYPESTORE.fielddefs[msgtype]
        pending += [d for _, (node, d) in types[msgtype][1] if isinstance(d, str)]
        pending += [d[0][1] for _, (node, d) in types[msgtype][1] if isinstance(d, tuple) and _named(d)]
    new = {k: v for k, v in types.items() if k not in store.fielddefs}
    if new:
        store.register(new)
    return store


def _named(desc: tuple) -> bool:
    elem = desc[0]
    return isinstance(elem, tuple) and isinstance(elem[1], str)
