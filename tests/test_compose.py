"""docker-compose.yml and the Dockerfile, checked against the code they run (no Docker, no database).

There is no Docker engine where the tests run, so these tests parse the files and hold them to
the project: the Celery app and queues, the WSGI application, the management commands, the
environment variables the settings read, the shared media volume, the GPU reservation.
"""

import ast
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SETTINGS_FILE = ROOT / "shop_demo" / "settings.py"

APP_SERVICES = ("migrate", "web", "worker-gpu", "worker-query", "beat")
WORKERS = ("worker-gpu", "worker-query")
# Processes that talk to PostgreSQL and Redis at run time.
RUNTIME_SERVICES = ("web", "worker-gpu", "worker-query", "beat")
MEDIA_SERVICES = ("web", "worker-gpu", "worker-query")
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]


@pytest.fixture(scope="session")
def clip_checkpoints():
    """Overrides the suite's autouse fixture of the same name: nothing here loads a model."""


# --- helpers ------------------------------------------------------------------------------------


def argv(command):
    """A compose ``command`` (a string compose splits like a shell, or a list) as a list."""
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), command
    return list(command)


def service_argv(name):
    assert "command" in SERVICES[name], f"service {name} has no command"
    return argv(SERVICES[name]["command"])


def dockerfile_instructions():
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def dockerfile_cmd():
    cmds = [args for instruction, args in dockerfile_instructions() if instruction.upper() == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    cmd = cmds[-1].strip()
    return yaml.safe_load(cmd) if cmd.startswith("[") else shlex.split(cmd)


def all_commands():
    """(where, argv) of every command in the compose file's services and the Dockerfile's CMD."""
    commands = [(name, argv(service["command"])) for name, service in SERVICES.items() if "command" in service]
    return commands + [("Dockerfile CMD", dockerfile_cmd())]


def option_values(args, *names):
    """Values of a command-line option given as ``--name value``, ``--name=value`` or ``-X value``."""
    values = []
    for index, arg in enumerate(args):
        for name in names:
            if arg == name:
                assert index + 1 < len(args), f"{name} without a value in {args}"
                values.append(args[index + 1])
            elif name.startswith("--") and arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
    return values


def environment(name):
    env = SERVICES[name].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def interpolation_default(value):
    """``${NAME:-default}`` -> ``default``; a plain value is returned as it is."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-(.*)\}", value)
    return match.group(1) if match else value


ENV_HELPERS = {"env_bool", "env_list", "env_int", "env_float", "env_match"}  # shop_demo/settings.py's


def settings_env_names():
    """Names of the environment variables shop_demo/settings.py reads (os.environ.get and the env_* helpers)."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS_FILE.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            reads_env = (
                (isinstance(func, ast.Name) and func.id in ENV_HELPERS)
                or (isinstance(func, ast.Attribute) and func.attr == "get"
                    and isinstance(func.value, ast.Attribute) and func.value.attr == "environ")
                or (isinstance(func, ast.Attribute) and func.attr == "getenv")
            )
            if reads_env:
                names.add(node.args[0].value)
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
              and node.value.attr == "environ" and isinstance(node.slice, ast.Constant)):
            names.add(node.slice.value)
    return names


def split_outside_interpolations(value, separator):
    """``value.split(separator)``, except inside ``${...}`` (whose ``:-`` is no separator)."""
    parts, current, depth = [], "", 0
    for char in value:
        if char == "{" and current.endswith("$"):
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == separator and not depth:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def volume_mounts(name):
    """(source, target, options) of a service's volumes in short or long syntax."""
    mounts = []
    for volume in SERVICES[name].get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((volume.get("source"), volume["target"], "ro" if volume.get("read_only") else "rw"))
        else:
            parts = split_outside_interpolations(volume, ":")
            mounts.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return mounts


def defines_name(path, name):
    """Whether module file ``path`` binds ``name`` at module level."""
    for node in ast.parse(path.read_text()).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
    return False


def management_command_exists(command):
    """Whether ``command`` is a management command of Django or of an app of this project.

    ``get_commands()`` needs configured settings; this looks for the command modules the way
    it does (``<package>/management/commands/<name>.py``).
    """
    import django

    django_dir = Path(django.__file__).parent
    folders = [django_dir / "core" / "management" / "commands"]
    folders += list((django_dir / "contrib").glob("*/management/commands"))
    folders += [path for path in ROOT.glob("**/management/commands") if ".venv" not in path.parts]
    return any((folder / f"{command}.py").is_file() for folder in folders)


# --- services -----------------------------------------------------------------------------------


def test_the_services_exist():
    assert {"db", "redis", "migrate", "web", "worker-gpu", "worker-query", "beat"} <= set(SERVICES)
    assert re.fullmatch(r"pgvector/pgvector:pg\d+", SERVICES["db"]["image"]), SERVICES["db"]["image"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-\w+)?", SERVICES["redis"]["image"]), SERVICES["redis"]["image"]
    for name in APP_SERVICES:
        assert SERVICES[name].get("build") == ".", f"{name} is not built from this repository's Dockerfile"
    # One image for all app services.
    assert len({SERVICES[name]["image"] for name in APP_SERVICES}) == 1


def test_interpolations_are_well_formed():
    """Every ``$`` is ``$$`` (a literal) or a ``${NAME}`` / ``${NAME:-default}`` / ``${NAME:?error}``."""
    text = COMPOSE_FILE.read_text()
    stripped = re.sub(r"\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}", "", text)
    assert "$" not in stripped, [line for line in stripped.splitlines() if "$" in line]


def test_db_and_redis_are_persistent_and_health_checked():
    top_level_volumes = set(COMPOSE.get("volumes") or {})
    db_mounts = {target: source for source, target, _ in volume_mounts("db")}
    assert db_mounts.get("/var/lib/postgresql/data") in top_level_volumes
    assert "pg_isready" in " ".join(argv(SERVICES["db"]["healthcheck"]["test"]))
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert re.fullmatch(rf"\$\{{{key}:-[^}}]+\}}", environment("db")[key]), environment("db")[key]

    redis_mounts = {target: source for source, target, _ in volume_mounts("redis")}
    assert redis_mounts.get("/data") in top_level_volumes
    redis_args = service_argv("redis")
    assert option_values(redis_args, "--appendonly") == ["yes"]
    assert argv(SERVICES["redis"]["healthcheck"]["test"])[-2:] == ["redis-cli", "ping"]


def test_gpu_worker_reserves_an_nvidia_gpu():
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    nvidia = [device for device in devices if device.get("driver") == "nvidia"]
    assert len(nvidia) == 1, devices
    assert "gpu" in nvidia[0]["capabilities"]
    assert nvidia[0].get("count") == 1
    assert environment("worker-gpu")["P2W_DEVICE"] == "cuda"


def test_query_worker_encodes_on_the_gpu_with_a_pool_of_threads():
    # ViT-L-14 encodes a shopper's photo in 1.2 s on two CPU cores (bench/results/image_tower.md).
    devices = SERVICES["worker-query"]["deploy"]["resources"]["reservations"]["devices"]
    assert [(d.get("driver"), d.get("count"), d.get("capabilities")) for d in devices] == [("nvidia", 1, ["gpu"])]
    assert environment("worker-query")["P2W_DEVICE"] == "cuda"
    args = service_argv("worker-query")
    assert option_values(args, "--pool", "-P") == ["threads"]
    assert option_values(args, "--concurrency", "-c") == ["8"]


# --- commands -----------------------------------------------------------------------------------


def test_celery_commands_name_the_celery_app(monkeypatch):
    from celery import Celery
    from celery.app.utils import find_app

    # Importing the app sets DJANGO_SETTINGS_MODULE with setdefault; leave the environment as it was.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "shop_demo.settings"))
    import shop_demo.celery

    assert isinstance(shop_demo.celery.app, Celery)
    celery_commands = [(where, args) for where, args in all_commands() if args[0] == "celery"]
    assert {where for where, _ in celery_commands} >= {"worker-gpu", "worker-query", "beat"}
    for where, args in celery_commands:
        apps = option_values(args, "-A", "--app")
        assert len(apps) == 1, f"{where}: {args}"
        # The lookup `celery -A NAME` does: NAME.app, NAME.celery, NAME.celery.app ...
        assert find_app(apps[0]) is shop_demo.celery.app, f"{where}: -A {apps[0]}"
        assert args[args.index(apps[0]) + 1] in {"worker", "beat"}, f"{where}: {args}"


def test_workers_consume_the_apps_queues():
    from p2w_search.conf import DEFAULTS

    bulk, query = DEFAULTS["BULK_QUEUE"], DEFAULTS["QUERY_QUEUE"]

    def queues(name):
        args = service_argv(name)
        assert args[:4] == ["celery", "-A", "shop_demo", "worker"], args
        return {queue for value in option_values(args, "--queues", "-Q") for queue in value.split(",")}

    assert queues("worker-gpu") == {bulk}
    assert queues("worker-query") == {query}
    workers = [name for name, args in all_commands() if args[0] == "celery" and "worker" in args]
    assert set(workers) == set(WORKERS), workers


def test_beat_runs_celery_beat_with_a_writable_schedule():
    args = service_argv("beat")
    assert args[:4] == ["celery", "-A", "shop_demo", "beat"]
    # The image's /app belongs to root and the app runs as a user: the schedule goes elsewhere.
    schedules = option_values(args, "--schedule", "-s")
    assert len(schedules) == 1 and schedules[0].startswith(("/tmp/", "/data/")), schedules


def test_gunicorn_commands_name_the_wsgi_application():
    gunicorn_commands = [(where, args) for where, args in all_commands() if args[0] == "gunicorn"]
    assert {where for where, _ in gunicorn_commands} == {"web", "Dockerfile CMD"}
    for where, args in gunicorn_commands:
        target = args[1]
        module, _, attr = target.partition(":")
        assert attr, f"{where}: {target} is not module:attr"
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        assert path.is_file(), f"{where}: {path} does not exist"
        assert defines_name(path, attr), f"{where}: {path} does not define {attr}"
        assert option_values(args, "--bind", "-b") == ["0.0.0.0:8000"], f"{where}: {args}"
    published = [str(port) for port in SERVICES["web"]["ports"]]
    assert len(published) == 1 and published[0].endswith(":8000"), published


def test_manage_py_commands_are_django_commands():
    assert management_command_exists("migrate") and management_command_exists("collectstatic")
    assert not management_command_exists("no_such_command")
    manage_commands = [(where, args) for where, args in all_commands() if "manage.py" in args]
    assert manage_commands, "no manage.py command"
    for where, args in manage_commands:
        assert args[args.index("manage.py") + 1] in {"migrate", "collectstatic", "check"}, f"{where}: {args}"
        assert management_command_exists(args[args.index("manage.py") + 1]), f"{where}: {args}"
    assert service_argv("migrate") == ["python", "manage.py", "migrate", "--noinput"]


def test_dockerfile_collects_static_files_into_the_image():
    runs = " ".join(args for instruction, args in dockerfile_instructions() if instruction.upper() == "RUN")
    assert "manage.py collectstatic --noinput" in runs
    env = " ".join(args for instruction, args in dockerfile_instructions() if instruction.upper() == "ENV")
    assert "DJANGO_STATIC_ROOT=" in env and "DJANGO_STATIC_ROOT" in settings_env_names()


# --- environment --------------------------------------------------------------------------------


def test_settings_env_names_are_found():
    names = settings_env_names()
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS",
            "P2W_MEDIA_ROOT", "P2W_DEVICE"} <= names
    assert "P2W_VAR_DIR" not in names  # read by shop_demo/services.py, not by the settings


# Read by libraries of the process, not by the settings: OpenMP (torch's CPU threads).
LIBRARY_ENV = {"OMP_WAIT_POLICY"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment_is_read_by_the_settings(name):
    env = environment(name)
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"} <= set(env), f"{name}: {sorted(env)}"
    unread = set(env) - settings_env_names() - LIBRARY_ENV
    assert not unread, f"{name} sets {sorted(unread)}, which shop_demo/settings.py does not read"
    for key, value in env.items():
        assert isinstance(value, str), f"{name}: {key}={value!r} is not a string"


@pytest.mark.parametrize("name", RUNTIME_SERVICES + ("migrate",))
def test_database_redis_and_secret_key_are_set(name):
    env = environment(name)
    db_env = environment("db")
    scheme, _, rest = env["DATABASE_URL"].partition("://")
    credentials, location = split_outside_interpolations(rest, "@")
    user, password = split_outside_interpolations(credentials, ":")
    host_port, _, database = location.partition("/")
    assert (scheme, host_port) == ("postgresql", "db:5432"), env["DATABASE_URL"]
    # The user, password and database the db service creates (the same ${...} expressions).
    assert (user, password, database) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"])
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?.+\}", env["DJANGO_SECRET_KEY"]), env["DJANGO_SECRET_KEY"]
    assert env["DJANGO_DEBUG"] == "false"
    assert interpolation_default(env["DJANGO_ALLOWED_HOSTS"])


def test_media_volume_is_mounted_at_media_root():
    top_level_volumes = set(COMPOSE.get("volumes") or {})
    sources = set()
    for name in MEDIA_SERVICES:
        media_root = environment(name)["P2W_MEDIA_ROOT"]
        assert media_root == "/data/media"
        mounts = {target: (source, options) for source, target, options in volume_mounts(name)}
        assert media_root in mounts, f"{name} does not mount {media_root}"
        source, options = mounts[media_root]
        assert source in top_level_volumes and options == "rw", (name, source, options)
        sources.add(source)
    assert len(sources) == 1, f"web and workers mount different media volumes: {sources}"


@pytest.mark.parametrize("name", WORKERS)
def test_workers_read_the_checkpoint_from_a_read_only_mount(name):
    env = environment(name)
    checkpoint = interpolation_default(env["P2W_CLIP_PRETRAINED"])
    mounts = {target: options for _, target, options in volume_mounts(name)}
    assert checkpoint.startswith("/models/")
    assert mounts.get("/models") == "ro", mounts
    assert interpolation_default(env["P2W_CLIP_MODEL"]) == "ViT-L-14"


# --- start order --------------------------------------------------------------------------------


def test_depends_on_conditions_are_valid():
    # Every app service waits for something; a loop over no depends_on at all would check nothing.
    assert all(SERVICES[name].get("depends_on") for name in APP_SERVICES), APP_SERVICES
    for name, service in SERVICES.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on syntax with conditions"
        for target, spec in depends_on.items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                # A one-shot service restarted after exit 0 would run again and again.
                assert SERVICES[target].get("restart", "no") in {"no", "on-failure"}, target


def test_start_order():
    def conditions(name):
        return {target: spec["condition"] for target, spec in SERVICES[name]["depends_on"].items()}

    assert conditions("migrate") == {"db": "service_healthy"}
    for name in ("web", "worker-gpu", "worker-query"):
        assert conditions(name).get("migrate") == "service_completed_successfully", name
        assert conditions(name).get("redis") == "service_healthy", name
    assert conditions("beat").get("redis") == "service_healthy"


# --- image --------------------------------------------------------------------------------------


def test_dockerfile_runs_as_a_user_on_python_311_slim():
    instructions = dockerfile_instructions()
    froms = [args.split()[0] for instruction, args in instructions if instruction.upper() == "FROM"]
    assert froms[-1] == "python:3.11-slim", froms
    assert any(instruction.upper() == "RUN" and "pip install -r" in args and "requirements.txt" in args
               for instruction, args in instructions)
    users = [args.strip() for instruction, args in instructions if instruction.upper() == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}, users


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", ".env"} <= ignored
