# Run by Django's own test runner (run.py's last step): it creates the test database with
# CREATE DATABASE, migrates it, runs these in transactions it rolls back, and drops it.
import decimal

from django.db import connection
from django.db.models import Sum
from django.test import TestCase

from shop.models import Customer, Order


class OrdersTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.c = Customer.objects.create(name="t", email="t@example.com")
        Order.objects.create(customer=cls.c, number="T1", total=decimal.Decimal("1.50"))
        Order.objects.create(customer=cls.c, number="T2", total=decimal.Decimal("2.25"))

    def test_runs_in_the_test_database(self):
        self.assertTrue(connection.settings_dict["NAME"].startswith("test_"))
        with connection.cursor() as cur:
            cur.execute("SELECT current_database()")
            self.assertEqual(cur.fetchone()[0], connection.settings_dict["NAME"])

    def test_aggregate_over_a_foreign_key(self):
        total = Order.objects.filter(customer__email="t@example.com").aggregate(s=Sum("total"))["s"]
        self.assertEqual(total, decimal.Decimal("3.75"))

    def test_each_test_starts_from_the_fixture(self):
        Order.objects.all().delete()
        self.assertEqual(Customer.objects.count(), 1)

    def test_the_fixture_is_back(self):
        self.assertEqual(Order.objects.count(), 2)
