"""Expressions that are one idea but two spellings: compiled per dialect by SQLAlchemy
(``@compiles``), so the statements that use them need not know the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Text, exists, func, literal, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class has_tag(FunctionElement[bool]):
    """``has_tag(column, tag)``: the string list ``column`` (``db.types.StringList``) holds
    ``tag``."""

    type = Boolean()
    inherit_cache = True
    name = "has_tag"


@compiles(has_tag, "postgresql")
def _has_tag_postgresql(element: has_tag, compiler: SQLCompiler, **kw: Any) -> str:
    # text[] containment: the form the GIN index on tags serves.
    column, tag = element.clauses
    return compiler.process(column.op("@>")(sql_cast(array([tag]), ARRAY(Text()))), **kw)


@compiles(has_tag, "sqlite")
def _has_tag_sqlite(element: has_tag, compiler: SQLCompiler, **kw: Any) -> str:
    # A JSON array: any of its elements equals the tag.
    column, tag = element.clauses
    each = func.json_each(column).table_valued("value")
    return compiler.process(
        exists(select(literal(1)).select_from(each).where(each.c.value == tag)), **kw)
