"""JupyterHub configuration for a medkit class on one server.

Start the hub as root with the Python environment that has medkit installed:
``jupyterhub -f deploy/jupyterhub_config.py``. Every setting below comes from
an environment variable, so a systemd unit (``jupyterhub.service``) or a test
can change one without editing this file:

=============================  ===============================  =================
variable                       sets                             default
=============================  ===============================  =================
MEDKIT_HUB_ROSTER              the class roster (classroom.py)  /etc/medkit-hub/
                                                                roster.csv
MEDKIT_HUB_STATE_DIR           database, cookie secret, pids    /var/lib/medkit-hub
MEDKIT_HUB_BIND_URL            public URL the proxy listens on  http://:8000
MEDKIT_HUB_PORT                the hub's port on 127.0.0.1      8081
MEDKIT_HUB_PROXY_API_PORT      the proxy's API port             8001
MEDKIT_HUB_EXCHANGE            nbgrader's exchange root         /srv/nbgrader/exchange
MEDKIT_HUB_COURSE_ID           nbgrader's course ID             medkit
MEDKIT_HUB_SPAWNER             ``systemd`` or ``local``         systemd
MEDKIT_HUB_USER_ENV            Python environment of the user   the hub's own
                               servers
MEDKIT_HUB_MEM_LIMIT           memory per user server           1G
MEDKIT_HUB_CPU_LIMIT           CPU cores per user server        1
MEDKIT_HUB_IDLE_TIMEOUT        seconds before an idle server    3600
                               is stopped
MEDKIT_HUB_COURSE_REPO         git URL of the lessons, pulled   (none)
                               when a user opens their server
MEDKIT_HUB_COURSE_BRANCH       the branch pulled                main
=============================  ===============================  =================

deploy/README.md explains the choices: PAM logins for the roster's Unix
accounts, SystemdSpawner to enforce the limits, and LocalProcessSpawner only
where systemd is not running (containers, CI), since it enforces no limit.
"""

import os
import sys
from pathlib import Path
from urllib.parse import urlencode

c = get_config()  # noqa: F821 (traitlets defines get_config when it loads this file)

DEPLOY_DIR = Path(__file__).resolve().parent
if str(DEPLOY_DIR) not in sys.path:
    sys.path.append(str(DEPLOY_DIR))

from classroom import instructors, read_roster, trainees  # noqa: E402


def setting(name: str, default: str) -> str:
    """Return the environment variable ``MEDKIT_HUB_<name>``, or ``default``."""
    return os.environ.get(f"MEDKIT_HUB_{name}", default)


roster = read_roster(setting("ROSTER", "/etc/medkit-hub/roster.csv"))
state_dir = Path(setting("STATE_DIR", "/var/lib/medkit-hub"))
state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
exchange = setting("EXCHANGE", "/srv/nbgrader/exchange")
course_id = setting("COURSE_ID", "medkit")
idle_timeout = int(setting("IDLE_TIMEOUT", "3600"))
# Activity must reach the hub well within the idle timeout, or a server in use
# could look idle; JupyterHub's default interval is 300 s.
activity_interval = max(5, min(300, idle_timeout // 4))

# The hub, its database and the proxy -----------------------------------------
c.JupyterHub.bind_url = setting("BIND_URL", "http://:8000")
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(setting("PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.JupyterHub.last_activity_interval = activity_interval
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{int(setting('PROXY_API_PORT', '8001'))}"
)
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")
# .ci/run installs the proxy into the environment; elsewhere it is on PATH.
local_proxy = Path(sys.prefix) / "node/node_modules/.bin/configurable-http-proxy"
if local_proxy.is_file():
    c.ConfigurableHTTPProxy.command = [str(local_proxy)]

# Logins ------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {member.username for member in roster}
c.Authenticator.admin_users = set(instructors(roster))
# PAM sessions need a system service that containers often lack, and the
# single-user servers do not use them.
c.PAMAuthenticator.open_sessions = False
c.JupyterHub.load_groups = {
    "instructors": {"users": instructors(roster)},
    "trainees": {"users": trainees(roster)},
}

# The single-user servers -------------------------------------------------------
spawner = setting("SPAWNER", "systemd")
if spawner == "systemd":
    c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
    c.SystemdSpawner.isolate_tmp = True
    c.SystemdSpawner.isolate_devices = True
    c.SystemdSpawner.disable_user_sudo = True
elif spawner == "local":
    c.JupyterHub.spawner_class = "localprocess"
else:
    raise ValueError(
        f"MEDKIT_HUB_SPAWNER is '{spawner}'; use 'systemd', or 'local' where "
        f"systemd is not running."
    )

# Every user runs this environment, so it and its interpreter must be readable
# by all (an interpreter below /root is not).
user_bin = Path(setting("USER_ENV", sys.prefix)) / "bin"
c.Spawner.cmd = [str(user_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.mem_limit = setting("MEM_LIMIT", "1G")
c.Spawner.cpu_limit = float(setting("CPU_LIMIT", "1"))
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def role_config_path(spawner) -> str:
    """Return ``JUPYTER_CONFIG_PATH``: the user's role folder, then the shared one."""
    role = "instructor" if spawner.user.name in instructors(roster) else "trainee"
    return os.pathsep.join(
        [str(DEPLOY_DIR / "jupyter" / role), str(DEPLOY_DIR / "jupyter")]
    )


c.Spawner.environment = {
    "JUPYTER_CONFIG_PATH": role_config_path,
    "MEDKIT_HUB_EXCHANGE": exchange,
    "MEDKIT_HUB_COURSE_ID": course_id,
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(activity_interval),
    "PATH": os.pathsep.join([str(user_bin), "/usr/local/bin", "/usr/bin", "/bin"]),
}

course_repo = setting("COURSE_REPO", "")
if course_repo:
    # nbgitpuller clones the lessons into ~/medkit-course on the first start and
    # merges updates into it afterwards, keeping the trainee's own edits.
    pull = {
        "repo": course_repo,
        "branch": setting("COURSE_BRANCH", "main"),
        "targetpath": "medkit-course",
        "urlpath": "lab/tree/medkit-course/notebooks/00_welcome.ipynb",
    }
    c.Spawner.default_url = f"/git-pull?{urlencode(pull)}"

# Idle servers are stopped ----------------------------------------------------
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={idle_timeout}",
            f"--cull-every={activity_interval}",
        ],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": [
            "list:users",
            "read:users:activity",
            "read:servers",
            "delete:servers",
        ],
        "services": ["idle-culler"],
    }
]
