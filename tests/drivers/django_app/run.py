# What a Django 5 application does with its database, step by step (see ../common.py for the
# server; duetsite/settings.py reads the same DRIVER_* env vars). DJANGO_SQL_LOG=1 logs every
# statement Django sends (the django.db.backends logger). The last step runs Django's own
# test runner on shop/tests.py (it creates and drops a test database).
import datetime, decimal, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "duetsite.settings")

import django
django.setup()

from django.contrib.auth import authenticate
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from common import step, summary
from shop.models import Customer, Order

if os.environ.get("DJANGO_SQL_LOG"):
    connection.force_debug_cursor = True  # log queries too, not only schema changes

D = decimal.Decimal
# Dropped at start (children first) so the script can re-run against the same database.
TABLES = ["django_admin_log", "auth_user_user_permissions", "auth_user_groups", "auth_group_permissions",
          "auth_permission", "auth_group", "auth_user", "django_session", "shop_order", "shop_customer",
          "django_content_type", "django_migrations"]


@step("connect + server version")
def _():
    connection.ensure_connection()
    print("   pg_version", connection.pg_version, "vendor", connection.vendor, "driver",
          connection.Database.__name__)


@step("drop leftover tables")
def _():
    with connection.cursor() as cur:
        for t in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {t}")


@step("migrate (auth, contenttypes, sessions, admin, shop)")
def _():
    call_command("migrate", interactive=False, verbosity=0)
    tables = set(connection.introspection.table_names())
    assert set(TABLES) <= tables, set(TABLES) - tables
    assert Permission.objects.filter(content_type__app_label="shop").count() == 8


@step("showmigrations: everything applied")
def _():
    from django.db.migrations.recorder import MigrationRecorder
    applied = MigrationRecorder(connection).applied_migrations()
    assert ("shop", "0001_initial") in applied and ("auth", "0001_initial") in applied, applied
    assert len(applied) >= 15, len(applied)


@step("create superuser with the ORM + authenticate")
def _():
    User.objects.create_superuser("admin", "admin@example.com", "s3cret")
    u = authenticate(username="admin", password="s3cret")
    assert u is not None and u.is_superuser and u.is_staff
    u.last_login = timezone.now()
    u.save(update_fields=["last_login"])
    assert User.objects.get(username="admin").last_login is not None


@step("sessions: SessionStore save + load")
def _():
    s = SessionStore()
    s["cart"] = [1, 2, 3]
    s.create()
    assert SessionStore(session_key=s.session_key)["cart"] == [1, 2, 3]


@step("create objects (auto_now_add DateTimeField, DecimalField, unique CharField)")
def _():
    before = timezone.now()
    for i in range(1, 5):
        c = Customer.objects.create(name=f"cust{i}", email=f"c{i}@example.com", is_vip=(i % 2 == 0))
        for j in range(i):
            Order.objects.create(customer=c, number=f"N{i}-{j}", total=D(f"{i}{j}.50"), paid=(j == 0))
    c1 = Customer.objects.get(email="c1@example.com")
    assert c1.created >= before - datetime.timedelta(seconds=5), (c1.created, before)
    assert Order.objects.count() == 10 and Customer.objects.count() == 4


@step("select_related join + filter on the related table")
def _():
    qs = Order.objects.select_related("customer").filter(customer__is_vip=True).order_by("-total")[:3]
    got = [(o.number, o.customer.name, o.total) for o in qs]
    assert got == [("N4-3", "cust4", D("43.50")), ("N4-2", "cust4", D("42.50")), ("N4-1", "cust4", D("41.50"))], got
    o = Order.objects.select_related("customer").get(number="N2-1")
    assert o.customer.email == "c2@example.com"


@step("filter/exclude/annotate(Count)/aggregate(Sum)")
def _():
    qs = (Customer.objects.annotate(n=Count("orders")).filter(n__gte=2).exclude(name="cust3")
          .order_by("name").values_list("name", "n"))
    assert list(qs) == [("cust2", 2), ("cust4", 4)], list(qs)
    paid = Customer.objects.annotate(np=Count("orders", filter=Q(orders__paid=True))).order_by("id")
    assert [c.np for c in paid] == [1, 1, 1, 1]
    agg = Order.objects.filter(customer__is_vip=True).aggregate(s=Sum("total"), c=Count("id"))
    assert agg == {"s": D("210.00"), "c": 6}, agg
    assert Order.objects.filter(Q(total__lt=12) | Q(number__startswith="N4")).count() == 5
    assert Order.objects.filter(created__lte=timezone.now(), customer__created__isnull=False).count() == 10


@step("QuerySet.update() with F() expression")
def _():
    n = Order.objects.filter(paid=False).update(paid=True, total=F("total") + 1)
    assert n == 6, n
    assert Order.objects.get(number="N3-2").total == D("33.50")
    assert not Order.objects.filter(paid=False).exists()


@step("select_for_update() inside transaction.atomic()")
def _():
    with transaction.atomic():
        o = Order.objects.select_for_update().get(number="N2-0")
        o.total += 5
        o.save()
        locked = list(Customer.objects.select_for_update().filter(is_vip=True).order_by("id"))
        assert len(locked) == 2
    assert Order.objects.get(number="N2-0").total == D("25.50")


@step("nested atomic: inner block rolled back, outer commits")
def _():
    with transaction.atomic():
        Customer.objects.create(name="outer", email="outer@example.com")
        try:
            with transaction.atomic():
                Customer.objects.create(name="inner", email="inner@example.com")
                raise RuntimeError("roll back the inner block")
        except RuntimeError:
            pass
        try:
            with transaction.atomic():
                Customer.objects.create(name="dup", email="c1@example.com")  # unique violation
        except IntegrityError:
            pass
        Customer.objects.filter(name="outer").update(is_vip=True)
    names = set(Customer.objects.filter(name__in=["outer", "inner", "dup"]).values_list("name", flat=True))
    assert names == {"outer"}, names


@step("cascading delete (on_delete=CASCADE)")
def _():
    c = Customer.objects.get(name="cust3")
    deleted, per_model = c.delete()
    assert per_model == {"shop.Order": 3, "shop.Customer": 1}, per_model
    assert not Order.objects.filter(number__startswith="N3-").exists()


@step("bulk_create (RETURNING ids) + ignore_conflicts + update_conflicts")
def _():
    c = Customer.objects.get(name="cust1")
    objs = Order.objects.bulk_create([Order(customer=c, number=f"B{i}", total=D(i)) for i in range(50)])
    assert all(o.pk is not None for o in objs) and len({o.pk for o in objs}) == 50
    Order.objects.bulk_create([Order(customer=c, number="B0", total=D(1))], ignore_conflicts=True)
    Order.objects.bulk_create([Order(customer=c, number="B1", total=D("77.00"))], update_conflicts=True,
                              unique_fields=["number"], update_fields=["total"])
    assert Order.objects.filter(number__startswith="B").count() == 50
    assert Order.objects.get(number="B1").total == D("77.00")


@step("admin LogEntry + contenttypes lookups")
def _():
    from django.contrib.admin.models import ADDITION, LogEntry
    u = User.objects.get(username="admin")
    c = Customer.objects.get(name="cust1")
    ct = ContentType.objects.get_for_model(Customer)
    LogEntry.objects.log_actions(user_id=u.pk, queryset=[c], action_flag=ADDITION, change_message="added")
    e = LogEntry.objects.select_related("content_type", "user").get(object_id=str(c.pk))
    assert e.content_type == ct and e.user.username == "admin"


@step("Django's test runner: CREATE DATABASE test_…, migrate, run shop/tests.py, DROP DATABASE")
def _():
    from django.db import connections
    connections.close_all()
    try:
        call_command("test", "shop", interactive=False, verbosity=1)
    except SystemExit as e:
        assert e.code in (0, None), f"the test run failed ({e.code})"


summary()
