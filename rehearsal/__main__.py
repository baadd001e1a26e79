# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m rehearsal``: run and use the rehearsal dom0.

  serve   serve the Admin API on a Unix socket (state persisted in --state)
  init    write a fresh state (what a new installation holds)
  call    one raw Admin API call through the collection's client
  demo    start a fresh rehearsal dom0 in the background and show it working
  run     serve while one command runs
  probe   connect from inside a running qube of a serving rehearsal dom0 (network realisation)
  clipboard  copy into / paste from the global clipboard of a running serve
  rootfs  build the cached base root filesystem of the qubes (``rootfs build``)
  dom0host  the rehearsal dom0 in a host of its own, reached by ssh (``dom0host start|stop|status|ssh-config|exec``)
  xenhost   the nested Xen host: a real hypervisor under QEMU, its qubes Xen domains (``xenhost build|start|stop|...``)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import subprocess
import signal
import sys
import tempfile
import threading

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import names, wire

from rehearsal import demo, installer, network, observe, qrexec, qrexec_proto, roots, rootfs, seed, world, xen
from rehearsal.dom0 import Dom0
from rehearsal.model import Dom0State
from rehearsal.policy_admin import POLICY_DIR, RUNTIME_POLICY_DIR, PolicyStore
from rehearsal.server import RehearsalServer

DEFAULT_SOCKET = "/var/run/qubesd.sock"
QREXEC_SOCKET_SUFFIX = ".qrexec.sock"
"""The qrexec socket is named after the qubesd socket: ``foo.sock`` -> ``foo.qrexec.sock`` (two servers in one
folder do not collide)."""
DAEMON_DIR_NAME = "qubes"
"""Where ``qrexec.<qube>`` files go by default: ``qubes/`` next to the qrexec socket (/var/run/qubes)."""
QREXEC_LOG_NAME = "qrexec.jsonl"
BIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")
"""The qrexec-client and qrexec-client-vm stand-ins."""


def qrexec_socket_next_to(socket_path: str) -> str:
    """The default qrexec socket of a qubesd socket: ``foo.sock`` -> ``foo.qrexec.sock`` in the same folder."""
    path = os.path.abspath(socket_path)
    return (path[:-len(".sock")] if path.endswith(".sock") else path) + QREXEC_SOCKET_SUFFIX


def qrexec_socket_for(args) -> str:
    """The qrexec socket: --qrexec-socket, or the one named after the qubesd socket."""
    return args.qrexec_socket or qrexec_socket_next_to(args.socket)


def play_environment(args) -> dict:
    """What a play (or any client) needs to reach this rehearsal dom0: its sockets and the dom0 stand-ins."""
    return {"QUBESD_SOCKET": os.path.abspath(args.socket),
            "QREXEC_CLIENT": os.path.join(BIN_DIR, "qrexec-client"),
            qrexec_proto.ENV_SOCKET: os.path.abspath(qrexec_socket_for(args)),
            "CORRAL_XL": os.path.join(BIN_DIR, "xl"),
            # dom0 reads its policy directory directly (writes go through the policy admin API)
            "CORRAL_POLICY_DIR": os.path.abspath(args.policy_dir or os.path.join(args.state, POLICY_DIR)),
            # and, on R4.3, its runtime policy directory (/run/qubes/policy.d)
            "CORRAL_RUNTIME_POLICY_DIR": runtime_policy_dir_for(args)}


def runtime_policy_dir_for(args) -> str:
    """R4.3's runtime policy directory: --runtime-policy-dir, or runtime-policy.d in the state directory."""
    return os.path.abspath(args.runtime_policy_dir or os.path.join(args.state, RUNTIME_POLICY_DIR))


def daemon_dir_for(args) -> str:
    """The qrexec daemon directory: --qrexec-daemon-dir, or ``qubes/`` next to the qrexec socket."""
    return os.path.abspath(args.qrexec_daemon_dir or os.path.join(os.path.dirname(
        os.path.abspath(qrexec_socket_for(args))), DAEMON_DIR_NAME))


def qrexec_log_for(args) -> str | None:
    """The qrexec call log: --qrexec-log, or qrexec.jsonl next to --call-log (none without either)."""
    if args.qrexec_log:
        return args.qrexec_log
    return os.path.join(os.path.dirname(os.path.abspath(args.call_log)), QREXEC_LOG_NAME) if args.call_log else None


def policy_store(state_dir: str, release: str, directory: str | None = None,
                 runtime_directory: str | None = None) -> PolicyStore:
    """The policy directory (``directory``, else ``policy.d`` in the state), seeded with the defaults when new, and
    R4.3's runtime directory (``runtime_directory``, else ``runtime-policy.d`` in the state)."""
    store = PolicyStore(directory or os.path.join(state_dir, POLICY_DIR), release,
                        runtime_directory or os.path.join(state_dir, RUNTIME_POLICY_DIR))
    store.ensure()
    return store


def _add_state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", required=True, help="state directory (created if missing)")
    parser.add_argument("--release", choices=names.RELEASES,
                        help=f"Qubes release to behave as (a fresh state: default {names.DEFAULT_RELEASE}; "
                             "an existing state keeps its own)")
    parser.add_argument("--templates", help="FEDORA,DEBIAN template names for a fresh state")
    parser.add_argument("--extra-appvm", action="append", default=[], metavar="NAME",
                        help="add an AppVM to a fresh state (repeatable)")
    parser.add_argument("--host-memory", type=int, default=16384, metavar="MIB",
                        help="host memory in MiB for a fresh state (default %(default)s)")


def load_or_seed(args) -> Dom0State:
    """The saved state, or a fresh one built from the options."""
    state = Dom0State.load(args.state)
    if state is not None and args.release and args.release != state.release:
        raise SystemExit(f"{args.state} holds an R{state.release} state; --release {args.release} "
                         "needs a fresh state (python -m rehearsal init --force ...)")
    if state is None:
        args.release = args.release or names.DEFAULT_RELEASE
        templates = tuple(args.templates.split(",")) if args.templates else None
        if templates is not None and len(templates) != 2:
            raise SystemExit("--templates takes two names: FEDORA,DEBIAN")
        state = seed.fresh_state(args.release, templates, tuple(args.extra_appvm),
                                 host_memory_mib=args.host_memory)
        state.save(args.state)
    return state


def build_server(args) -> RehearsalServer:
    """A server for the options of ``serve`` (and ``demo``)."""
    state = load_or_seed(args)
    dom0 = Dom0(state, args.state, shutdown_delay=args.shutdown_delay)
    store = policy_store(args.state, dom0.release, args.policy_dir, args.runtime_policy_dir)
    dom0.admin_policy = qrexec.admin_policy(dom0, store)
    faults = observe.Faults(args.fault, args.latency)
    net = build_network(args, dom0)
    server = RehearsalServer(dom0, args.socket, observe.CallLog(args.call_log), faults, debug=args.debug,
                             network=net)
    if args.backend == "xen":
        if shutil.which("xl") is None:
            raise SystemExit("--backend xen needs Xen's xl (run it in the nested Xen host: python -m rehearsal xenhost)")
        server.companions.append(xen.Xen(dom0, args.state))
    try:
        runs_roots = args.backend != "xen" and roots.enabled(args.roots)
    except roots.Unavailable as exc:
        raise SystemExit(str(exc)) from None
    backend = roots.Roots(dom0, args.state, daemon_dir_for(args), network=net) if runs_roots else None
    if backend is not None:
        backend.qrexec_socket = os.path.abspath(qrexec_socket_for(args))
        server.companions.append(backend)
    # the HVM installer stand-in: a backend of qube start, after the roots whose loop devices it reads
    server.companions.append(installer.Installer(dom0, args.state, delay=args.install_delay))
    server.companions.append(qrexec.QrexecServer(server, store, qrexec_socket_for(args), roots=backend,
                                                 log=observe.CallLog(qrexec_log_for(args))))
    return server


def build_network(args, dom0: Dom0) -> network.Network | None:
    """The network realisation ``--network`` and ``--world`` ask for (None when off)."""
    try:
        if not network.enabled(args.network):
            return None
        destinations = world.load(args.world)
    except (network.Unavailable, world.WorldError) as exc:
        raise SystemExit(str(exc)) from None
    return network.Network(dom0, network.Layout(args.state), destinations)


async def _serve(server: RehearsalServer, ready: threading.Event | None = None,
                 stop: asyncio.Event | None = None, environment: dict | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if ready is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    if ready is not None:
        ready.set()
    else:
        print(f"rehearsal dom0 (R{server.dom0.release}) serving {server.socket_path}", flush=True)
        for companion in server.companions:
            if getattr(companion, "socket_path", None):
                print(f"  and {companion.socket_path}", flush=True)
            if getattr(companion, "daemon_dir", None):
                print(f"  qubes run on real roots; {qrexec_proto.ENV_DAEMON_DIR}={companion.daemon_dir}", flush=True)
        if environment:
            print("environment for a play against it (sh):", flush=True)
            for key, value in environment.items():
                print(f"  export {key}={shlex.quote(value)}", flush=True)
            print(f"  export PATH={shlex.quote(os.path.join(BIN_DIR, 'dom0'))}:\"$PATH\"", flush=True)
    await stop.wait()
    await server.stop()


def cmd_serve(args) -> int:
    """Serve until SIGTERM/SIGINT."""
    asyncio.run(_serve(build_server(args), environment=play_environment(args)))
    return 0


def cmd_init(args) -> int:
    """Write a fresh state."""
    if os.path.exists(args.state) and args.force:
        shutil.rmtree(args.state)
    if Dom0State.load(args.state) is not None:
        print(f"{args.state} already holds a state (use --force to replace it)", file=sys.stderr)
        return 1
    state = load_or_seed(args)
    policy_store(args.state, state.release)
    print(f"fresh R{args.release or names.DEFAULT_RELEASE} state written to {args.state}")
    return 0


def cmd_call(args) -> int:
    """One call; prints the reply content, or the error class and message."""
    client = client_mod.AdminClient(client_mod.SocketTransport(args.socket))
    payload = args.payload.encode() if args.payload is not None else b""
    try:
        content = client.call_bytes(args.method, args.dest, args.arg or "", payload)
    except wire.QubesException as exc:
        print(f"{exc.exc_class}: {exc.message}", file=sys.stderr)
        return 2
    sys.stdout.write(content.decode("utf-8", "replace"))
    if content and not content.endswith(b"\n"):
        sys.stdout.write("\n")
    return 0


class BackgroundServer:
    """A rehearsal dom0 served from a thread (for the demo and quick scripts)."""

    def __init__(self, server: RehearsalServer):
        self.server = server
        self._ready = threading.Event()
        self._loop = None
        self._stop = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._loop.run_until_complete(_serve(self.server, self._ready, self._stop))

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the rehearsal dom0 did not start")
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def cmd_demo(args) -> int:
    """Fresh state, background server, a short tour through the collection's client."""
    if os.path.exists(args.state):
        shutil.rmtree(args.state)
    os.makedirs(os.path.dirname(os.path.abspath(args.socket)), exist_ok=True)
    server = build_server(args)
    with BackgroundServer(server):
        demo.tour(client_mod.AdminClient(client_mod.SocketTransport(args.socket)), args, server.dom0.release)
    print(f"\nState kept in {args.state}; serve it again with:\n"
          f"  python -m rehearsal serve --state {args.state} --socket {args.socket} --call-log {args.call_log}")
    return 0


def cmd_run(args) -> int:
    """Serve a fresh (or kept) rehearsal dom0 while one command runs with QUBESD_SOCKET pointing at it.

    The command also finds the rehearsal's qrexec-client (QREXEC_CLIENT) and xl (CORRAL_XL) stand-ins, its policy
    directory (CORRAL_POLICY_DIR: dom0 reads it directly) and R4.3 runtime policy directory
    (CORRAL_RUNTIME_POLICY_DIR), and
    the qrexec daemon directory (CORRAL_QREXEC_DAEMON_DIR for the connection plugin).
    """
    if not args.command_argv:
        print("run: give a command after --", file=sys.stderr)
        return 2
    if args.fresh and os.path.exists(args.state):
        shutil.rmtree(args.state)
    os.makedirs(os.path.dirname(os.path.abspath(args.socket)), exist_ok=True)
    env = dict(os.environ, **play_environment(args))
    # dom0 commands the collection runs (qvm-template) resolve to the rehearsal's stand-ins
    env["PATH"] = os.pathsep.join([os.path.join(BIN_DIR, "dom0"), env.get("PATH", os.defpath)])
    env[qrexec_proto.ENV_DAEMON_DIR] = daemon_dir_for(args)
    # where corral.qubes.qrexec looks for a running qube's qrexec daemon socket (/var/run/qubes in dom0)
    env["CORRAL_QREXEC_DAEMON_DIR"] = daemon_dir_for(args)
    with BackgroundServer(build_server(args)):
        return subprocess.run(args.command_argv, env=env, check=False).returncode


def cmd_probe(args) -> int:
    """One probe; prints the outcome and exits 0 when connected, 1 otherwise, 2 if it cannot be made."""
    try:
        result = network.probe(network.Layout(args.state), args.qube, args.host, args.port, args.proto, args.timeout)
    except network.ProbeError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
    print(result)
    return 0 if result == network.CONNECTED else 1


def cmd_clipboard(args) -> int:
    """Copy a qube's clipboard into the global one, or paste the global one into a qube."""
    path = args.qrexec_socket or os.environ.get(qrexec_proto.ENV_SOCKET) or qrexec_socket_next_to(
        os.environ.get("QUBESD_SOCKET", DEFAULT_SOCKET))
    service = "qubes.ClipboardCopy" if args.action == "copy" else "qubes.ClipboardPaste"
    payload = args.text.encode("utf-8") if args.action == "copy" else b""
    try:
        status, stderr = qrexec_proto.call(path, "dom0", args.qube, service, payload, sys.stdout.buffer)
    except OSError as exc:
        print(f"cannot reach the rehearsal's qrexec socket {path}: {exc}", file=sys.stderr)
        return 2
    sys.stderr.write(stderr.decode("utf-8", "replace"))
    return status


def cmd_rootfs(args) -> int:
    """Build the base root filesystem (if missing, or --force); print where and how long it took."""
    try:
        path, seconds, built = rootfs.build(force=args.force)
    except rootfs.BuildError as exc:
        print(f"rootfs: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {'built' if built else 'cached'} in {seconds:.1f} s")
    return 0


def main(argv=None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["dom0host"]:
        from rehearsal import dom0host  # pylint: disable=import-outside-toplevel
        return dom0host.main(argv[1:])
    if argv[:1] == ["xenhost"]:
        from rehearsal import xenhost  # pylint: disable=import-outside-toplevel
        return xenhost.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the Admin API")
    demo = sub.add_parser("demo", help="start a fresh rehearsal dom0 and show it working")
    run = sub.add_parser("run", help="serve while a command runs (QUBESD_SOCKET is set for it)")
    run.add_argument("--fresh", action="store_true", help="start from a fresh state")
    run.add_argument("command_argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    for p in (serve, demo, run):
        _add_state_options(p)
        p.add_argument("--socket", default=DEFAULT_SOCKET, help="socket path (default %(default)s)")
        p.add_argument("--qrexec-socket", help="the qrexec stand-in's socket (default: named after --socket, "
                                               f"foo.sock -> foo{QREXEC_SOCKET_SUFFIX})")
        p.add_argument("--call-log", help="append one JSON line per call to this file")
        p.add_argument("--fault", action="append", default=[], metavar="METHOD:N[+]:fail|drop|garble|crash",
                       help="fail, drop or garble (a success reply that is not UTF-8) the Nth call of METHOD "
                            "(N+: from the Nth on); crash (policy.* only): "
                            "the server kills itself after writing the new policy file, before renaming it")
        p.add_argument("--latency", action="append", default=[], metavar="METHOD:MS",
                       help="delay each call of METHOD (* for all) by MS milliseconds")
        p.add_argument("--shutdown-delay", type=float, default=0.1, metavar="SECONDS",
                       help="how long a qube stays Halting after a shutdown (default %(default)s)")
        p.add_argument("--install-delay", type=float, default=1.0, metavar="SECONDS",
                       help="how long the HVM installer stand-in takes before the guest powers off "
                            "(default %(default)s)")
        p.add_argument("--debug", action="store_true", help="print tracebacks of aborted requests")
        p.add_argument("--network", choices=("auto", "on", "off"), default="auto",
                       help="realise running qubes as network namespaces with their firewall "
                            "(auto: when run as root with ip and nft; default %(default)s)")
        p.add_argument("--world", default=world.DEFAULT_WORLD, metavar="FILE",
                       help="destinations of the world namespace (default: the reference layout's)")
        p.add_argument("--roots", choices=("auto", "on", "off"), default="auto",
                       help="run each running qube on a root filesystem of its own, in its own namespaces "
                            "(auto: as root when the base root is cached; on: build it if missing; "
                            "default %(default)s)")
        p.add_argument("--backend", choices=("stand-in", "xen"), default="stand-in",
                       help="what runs the qubes: the rehearsal's stand-ins (power states as bookkeeping, roots and "
                            "network per --roots and --network), or xen: real Xen domains through xl (inside the "
                            "nested Xen host, python -m rehearsal xenhost; --roots is then off) "
                            "(default %(default)s)")
        p.add_argument("--qrexec-daemon-dir", metavar="DIR",
                       help=f"where qrexec.<qube> marks a qube whose root runs (default: {DAEMON_DIR_NAME}/ "
                            f"next to the qrexec socket; ${qrexec_proto.ENV_DAEMON_DIR} for commands of run)")
        p.add_argument("--policy-dir", metavar="DIR",
                       help=f"the qrexec policy directory (default: {POLICY_DIR} in the state directory; a dom0's is "
                            "/etc/qubes/policy.d)")
        p.add_argument("--runtime-policy-dir", metavar="DIR",
                       help=f"R4.3's runtime policy directory, read by qrexec too (default: {RUNTIME_POLICY_DIR} in "
                            "the state directory; a dom0's is /run/qubes/policy.d)")
        p.add_argument("--qrexec-log", metavar="FILE",
                       help=f"one JSON line per qrexec call (default: {QREXEC_LOG_NAME} next to --call-log)")
    demo.set_defaults(func=cmd_demo)
    run.set_defaults(func=cmd_run)
    serve.set_defaults(func=cmd_serve)

    init = sub.add_parser("init", help="write a fresh state")
    _add_state_options(init)
    init.add_argument("--force", action="store_true", help="replace an existing state")
    init.set_defaults(func=cmd_init)

    call = sub.add_parser("call", help="one raw Admin API call")
    call.add_argument("method")
    call.add_argument("dest", nargs="?", default="dom0")
    call.add_argument("--arg", default="")
    call.add_argument("--payload")
    call.add_argument("--socket", default=os.environ.get("QUBESD_SOCKET", DEFAULT_SOCKET))
    call.set_defaults(func=cmd_call)

    probe = sub.add_parser("probe", help="connect from inside a running qube (network realisation)")
    probe.add_argument("--state", required=True, help="state directory of the serving rehearsal dom0")
    probe.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    probe.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS")
    probe.add_argument("qube")
    probe.add_argument("host", help="IPv4 address or a name of the world's hosts file")
    probe.add_argument("port", type=int)
    probe.set_defaults(func=cmd_probe)

    clip = sub.add_parser("clipboard", help="the global clipboard of a running serve")
    clip_sub = clip.add_subparsers(dest="action", required=True)
    copy = clip_sub.add_parser("copy", help="copy TEXT as QUBE's clipboard into the global clipboard")
    copy.add_argument("qube")
    copy.add_argument("text")
    paste = clip_sub.add_parser("paste", help="paste the global clipboard into QUBE (prints it) if the policy allows")
    paste.add_argument("qube")
    for p in (copy, paste):
        p.add_argument("--qrexec-socket", help=f"default ${qrexec_proto.ENV_SOCKET}, or the one named after "
                                               "$QUBESD_SOCKET")
    clip.set_defaults(func=cmd_clipboard)

    sub.add_parser("xenhost", help="the nested Xen host (build, start, stop, status, ssh-config, exec)",
                   add_help=False)
    sub.add_parser("dom0host", help="the rehearsal dom0 in a host of its own (start, stop, status, ssh-config, exec)",
                   add_help=False)
    rootfs_parser = sub.add_parser("rootfs", help="the cached base root filesystem of the qubes")
    rootfs_sub = rootfs_parser.add_subparsers(dest="action", required=True)
    build = rootfs_sub.add_parser("build", help=f"debootstrap it into ${rootfs.CACHE_ENV}/rootfs (default "
                                                "~/.cache/corral-qubes) unless it is there")
    build.add_argument("--force", action="store_true", help="build it again")
    build.set_defaults(func=cmd_rootfs)

    args = parser.parse_args(argv)
    if args.command == "run" and args.command_argv[:1] == ["--"]:
        args.command_argv = args.command_argv[1:]
    if getattr(args, "call_log", "unset") is None and args.command == "demo":
        args.call_log = os.path.join(tempfile.gettempdir(), "rehearsal-demo-calls.jsonl")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
