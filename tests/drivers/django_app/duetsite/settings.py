# Minimal Django settings for the DuetDB driver test; the server comes from the DRIVER_* env vars
# (see ../common.py). USE_TZ is on, as Django's default; DJANGO_USE_TZ=0 turns it off (DateTimeField
# stays "timestamp with time zone" on PostgreSQL either way). DJANGO_SQL_LOG=1 logs the SQL sent.
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "duetdb-driver-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
ROOT_URLCONF = "duetsite.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DRIVER_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DRIVER_PORT", "5433"),
        "USER": os.environ.get("DRIVER_USER", "postgres"),
        "PASSWORD": os.environ.get("DRIVER_PASSWORD", ""),
        "NAME": os.environ.get("DRIVER_DB", "duetdb"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = os.environ.get("DJANGO_USE_TZ", "1") == "1"
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; this is a test
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.db.backends": {
        "handlers": ["console"],
        "level": "DEBUG" if os.environ.get("DJANGO_SQL_LOG") else "WARNING",
        "propagate": False,
    }},
}
