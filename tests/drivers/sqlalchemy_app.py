# What an application does with the SQLAlchemy 2 ORM over psycopg 3, step by step
# (see common.py for the server). SQLA_ECHO=1 logs every statement SQLAlchemy sends.
import datetime, decimal, os
from typing import List, Optional

from sqlalchemy import (Boolean, DateTime, ForeignKey, Index, Integer, MetaData, Numeric, String,
                        UniqueConstraint, create_engine, delete, func, inspect, insert, select,
                        text, update)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

from common import HOST, PORT, USER, DB, step, summary

D = decimal.Decimal
TS = datetime.datetime(2024, 5, 17, 12, 34, 56)
URL = f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{DB}"
engine = create_engine(URL, echo=bool(os.environ.get("SQLA_ECHO")))
TABLES = ["sa_book", "sa_author", "sa_counter"]


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "sa_author"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    email: Mapped[Optional[str]] = mapped_column(String(200))
    joined: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime(timezone=False))
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    books: Mapped[List["Book"]] = relationship(back_populates="author", cascade="all, delete-orphan",
                                               order_by="Book.id")
    __table_args__ = (UniqueConstraint("email", name="uq_sa_author_email"),)


class Book(Base):
    __tablename__ = "sa_book"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_author.id"), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    price: Mapped[Optional[D]] = mapped_column(Numeric(10, 2))
    published: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime(timezone=False))
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    author: Mapped[Author] = relationship(back_populates="books")
    __table_args__ = (Index("ix_sa_book_title_price", "title", "price"),)


class Counter(Base):
    __tablename__ = "sa_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)
    hits: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


def seed_author(s, i, nbooks=3):
    a = Author(name=f"author{i}", email=f"a{i}@example.com", joined=TS + datetime.timedelta(days=i),
               active=(i % 2 == 1))
    for j in range(nbooks):
        a.books.append(Book(title=f"book{i}-{j}", price=D(f"{i}{j}.50"),
                            published=TS + datetime.timedelta(hours=10 * i + j), in_stock=(j != 1)))
    s.add(a)
    return a


@step("engine connect + server_version")
def _():
    with engine.connect() as c:
        v = c.execute(text("SELECT version()")).scalar_one()
        print("   ", v[:60], "dialect server_version_info", engine.dialect.server_version_info)


@step("drop leftovers + metadata.create_all (SERIAL, FK, UNIQUE, INDEX)")
def _():
    with engine.begin() as c:
        for t in TABLES:
            c.execute(text(f"DROP TABLE IF EXISTS {t} CASCADE"))
    Base.metadata.create_all(engine)
    assert set(TABLES) <= set(inspect(engine).get_table_names())


@step("session add + commit with relationship (SERIAL ids come back)")
def _():
    with Session(engine) as s:
        authors = [seed_author(s, i) for i in range(1, 4)]
        s.commit()
        ids = [a.id for a in authors]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3, ids
        assert all(b.author_id == authors[0].id for b in authors[0].books)
        assert s.scalar(select(func.count()).select_from(Book)) == 9


@step("select(...).join(...) with filter/order_by/limit")
def _():
    with Session(engine) as s:
        q = (select(Book.title, Author.name, Book.price)
             .join(Book.author)
             .where(Author.active.is_(True), Book.price > D("10"))
             .order_by(Book.price.desc(), Book.id)
             .limit(3))
        rows = s.execute(q).all()
        assert [tuple(r) for r in rows] == [("book3-2", "author3", D("32.50")), ("book3-1", "author3", D("31.50")),
                                            ("book3-0", "author3", D("30.50"))], rows
        q2 = (select(Author.name, func.count(Book.id), func.sum(Book.price))
              .join(Author.books).where(Book.in_stock).group_by(Author.name).order_by(Author.name))
        rows = [tuple(r) for r in s.execute(q2).all()]
        assert rows == [("author1", 2, D("23.00")), ("author2", 2, D("43.00")), ("author3", 2, D("63.00"))], rows


@step("ORM query: filter_by/scalars/relationship lazy load + selectinload")
def _():
    with Session(engine) as s:
        a = s.scalars(select(Author).filter_by(name="author2")).one()
        assert [b.title for b in a.books] == ["book2-0", "book2-1", "book2-2"]
        assert a.joined == TS + datetime.timedelta(days=2) and a.active is False
        authors = s.scalars(select(Author).options(selectinload(Author.books)).order_by(Author.id)).all()
        assert [len(x.books) for x in authors] == [3, 3, 3]
        b = s.scalars(select(Book).where(Book.title.like("book1-%")).order_by(Book.id).offset(1).limit(1)).one()
        assert b.title == "book1-1" and b.author.name == "author1" and b.in_stock is False
        assert b.published == TS + datetime.timedelta(hours=11)


@step("ORM update: dirty attribute flush + update() statement")
def _():
    with Session(engine) as s:
        b = s.scalars(select(Book).where(Book.title == "book1-0")).one()
        b.price = D("99.99")
        b.in_stock = False
        s.commit()
        r = s.execute(update(Book).where(Book.author_id == b.author_id, Book.title != "book1-0")
                      .values(price=Book.price + 1))
        assert r.rowcount == 2, r.rowcount
        s.commit()
        prices = s.scalars(select(Book.price).where(Book.author_id == b.author_id).order_by(Book.id)).all()
        assert prices == [D("99.99"), D("12.50"), D("13.50")], prices


@step("ORM delete: delete-orphan, cascade delete of parent, delete() statement")
def _():
    with Session(engine) as s:
        a = s.scalars(select(Author).where(Author.name == "author1")).one()
        a.books.remove(a.books[0])  # orphan -> DELETE
        s.commit()
        assert s.scalar(select(func.count(Book.id)).where(Book.author_id == a.id)) == 2
        aid = a.id
        s.delete(a)  # cascades to its books
        s.commit()
        assert s.scalar(select(func.count(Book.id)).where(Book.author_id == aid)) == 0
        assert s.get(Author, aid) is None
        r = s.execute(delete(Book).where(Book.title == "book2-2"))
        assert r.rowcount == 1
        s.commit()
        assert s.scalar(select(func.count()).select_from(Book)) == 5


@step("nested transaction: begin_nested() rolled back, outer commits")
def _():
    with Session(engine) as s:
        a = seed_author(s, 4, nbooks=1)
        s.flush()
        sp = s.begin_nested()
        seed_author(s, 5, nbooks=2)
        s.flush()
        sp.rollback()
        with s.begin_nested():
            a.books.append(Book(title="book4-x", price=D("1.00")))
        s.commit()
        names = s.scalars(select(Author.name).order_by(Author.id)).all()
        assert names == ["author2", "author3", "author4"], names
        assert s.scalar(select(func.count(Book.id)).where(Book.author_id == a.id)) == 2


@step("nested transaction: IntegrityError inside begin_nested(), then continue")
def _():
    with Session(engine) as s:
        try:
            with s.begin_nested():
                s.add(Author(name="dup", email="a2@example.com"))  # unique email violation
        except IntegrityError:
            pass
        else:
            raise AssertionError("expected IntegrityError")
        s.add(Author(name="author6", email="a6@example.com"))
        s.commit()
        assert s.scalar(select(func.count()).select_from(Author).where(Author.name.in_(["dup", "author6"]))) == 1


@step("upsert: postgresql insert().on_conflict_do_update(index_elements, set_)")
def _():
    with Session(engine) as s:
        for _ in range(3):
            stmt = pg_insert(Counter).values(key="page", hits=1)
            stmt = stmt.on_conflict_do_update(index_elements=[Counter.key],
                                              set_={"hits": Counter.hits + stmt.excluded.hits})
            s.execute(stmt)
        stmt = pg_insert(Counter).values([{"key": "a", "hits": 5}, {"key": "page", "hits": 10}])
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"hits": stmt.excluded.hits}) \
                   .returning(Counter.key, Counter.hits)
        got = sorted(tuple(r) for r in s.execute(stmt).all())
        assert got == [("a", 5), ("page", 10)], got
        s.execute(pg_insert(Counter).values(key="a", hits=7).on_conflict_do_nothing(index_elements=["key"]))
        s.commit()
        assert dict(s.execute(select(Counter.key, Counter.hits)).all()) == {"a": 5, "page": 10}


@step("bulk insert: session.execute(insert(Model), [dicts]) + add_all (insertmanyvalues RETURNING)")
def _():
    with Session(engine) as s:
        aid = s.scalars(select(Author.id).where(Author.name == "author3")).one()
        s.execute(insert(Book), [dict(author_id=aid, title=f"bulk{i}", price=D(i), published=TS, in_stock=True)
                                 for i in range(100)])
        objs = [Book(author_id=aid, title=f"addall{i}", price=D(i)) for i in range(50)]
        s.add_all(objs)
        s.flush()
        assert all(isinstance(o.id, int) for o in objs) and len({o.id for o in objs}) == 50
        s.commit()
        ids = s.scalars(select(Author.id).where(Author.name.in_(["author2", "author3", "author4"]))).all()
        s.execute(insert(Counter).returning(Counter.id, sort_by_parameter_order=True),
                  [{"key": f"k{i}", "hits": i} for i in range(20)])
        s.commit()
        assert s.scalar(select(func.count()).select_from(Book).where(Book.title.like("bulk%"))) == 100
        assert s.scalar(select(func.count()).select_from(Counter)) == 22
        assert len(ids) == 3


@step("inspect(engine).get_table_names()")
def _():
    names = inspect(engine).get_table_names()
    assert set(TABLES) <= set(names), names


@step("inspect(engine).get_columns()")
def _():
    cols = {c["name"]: c for c in inspect(engine).get_columns("sa_book")}
    assert list(cols) == ["id", "author_id", "title", "price", "published", "in_stock"], list(cols)
    assert isinstance(cols["id"]["type"], Integer) and cols["id"]["autoincrement"] is True
    assert "nextval" in str(cols["id"]["default"]), cols["id"]
    assert isinstance(cols["title"]["type"], String) and cols["title"]["type"].length == 200
    assert isinstance(cols["price"]["type"], Numeric) and (cols["price"]["type"].precision, cols["price"]["type"].scale) == (10, 2)
    assert isinstance(cols["published"]["type"], DateTime) and cols["published"]["type"].timezone is False
    assert isinstance(cols["in_stock"]["type"], Boolean) and cols["in_stock"]["nullable"] is False
    assert cols["price"]["nullable"] is True


@step("inspect(engine).get_pk_constraint()")
def _():
    pk = inspect(engine).get_pk_constraint("sa_book")
    assert pk["constrained_columns"] == ["id"], pk


@step("inspect(engine).get_foreign_keys()")
def _():
    fks = inspect(engine).get_foreign_keys("sa_book")
    assert len(fks) == 1, fks
    fk = fks[0]
    assert (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) == (["author_id"], "sa_author", ["id"]), fk


@step("inspect(engine).get_indexes()")
def _():
    ix = {i["name"]: i for i in inspect(engine).get_indexes("sa_book")}
    assert ix["ix_sa_book_author_id"]["column_names"] == ["author_id"], ix
    assert ix["ix_sa_book_title_price"]["column_names"] == ["title", "price"], ix
    assert not ix["ix_sa_book_author_id"]["unique"]


@step("inspect(engine).get_unique_constraints()")
def _():
    insp = inspect(engine)
    uq = insp.get_unique_constraints("sa_author")
    assert [(u["name"], u["column_names"]) for u in uq] == [("uq_sa_author_email", ["email"])], uq
    uq2 = insp.get_unique_constraints("sa_counter")
    assert [u["column_names"] for u in uq2] == [["key"]], uq2


@step("MetaData().reflect()")
def _():
    md = MetaData()
    md.reflect(bind=engine, only=TABLES)
    book = md.tables["sa_book"]
    assert [c.name for c in book.primary_key.columns] == ["id"]
    assert [(fk.parent.name, fk.column.table.name) for fk in book.foreign_keys] == [("author_id", "sa_author")]
    with engine.connect() as c:
        n = c.execute(select(func.count()).select_from(book.join(md.tables["sa_author"]))).scalar_one()
        assert n == 157, n


@step("metadata.drop_all")
def _():
    Base.metadata.drop_all(engine)
    names = inspect(engine).get_table_names()
    assert not set(TABLES) & set(names), names


summary()
