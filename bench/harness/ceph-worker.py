# One librados client of the bench's ceph target (bench/harness/ceph.ts): one Rados handle,
# that is one MonClient session, to the monitors named by --mon-host (one, to pin the client to
# a member, as the other targets' clients are), driven over stdin/stdout by the Node bench.
#
#   stdin, one request a line:   ID <tab> DEADLINE <tab> COMMAND-JSON
#                                (DEADLINE: wall-clock ms since the epoch after which the bench no
#                                longer waits; COMMAND-JSON as `ceph` sends it to mon_command)
#   stdout, one reply a line:    {"id": ID, "r": 0, "rs": "...", "out": "..."}
#   first line on stdout:        {"ready": true} once connected, or {"ready": false, "error": "..."}
#
# python3-rados has no asynchronous mon_command, and the call releases the GIL while it waits:
# each request in flight runs on a thread of its own, started when no thread is idle, at most
# --threads-max (beyond that, requests wait in the queue). Every call is bounded by
# rados_mon_op_timeout. A request whose deadline passed while it waited in the queue is answered
# -ETIMEDOUT without being sent: a backlog of requests nobody waits for would otherwise delay the
# fresh ones behind it (e.g. in (d), while the monitors elect). Ends when stdin closes.
import argparse
import json
import os
import queue
import sys
import threading
import time

import rados


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conf", required=True)
    parser.add_argument("--mon-host", required=True)
    parser.add_argument("--op-timeout-s", type=int, required=True)
    parser.add_argument("--connect-timeout-s", type=int, default=20)
    parser.add_argument("--threads-max", type=int, default=64)
    args = parser.parse_args()

    out_lock = threading.Lock()

    def emit(record: dict) -> None:
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with out_lock:
            while data:
                data = data[os.write(1, data) :]

    try:
        cluster = rados.Rados(
            conffile=args.conf,
            name="client.admin",
            conf={
                "mon_host": args.mon_host,
                "rados_mon_op_timeout": str(args.op_timeout_s),
                "client_mount_timeout": str(args.connect_timeout_s),
            },
        )
        cluster.connect(timeout=args.connect_timeout_s)
    except Exception as error:  # noqa: BLE001 — reported to the bench, which says why
        emit({"ready": False, "error": f"{type(error).__name__}: {error}"})
        return 1

    requests: "queue.SimpleQueue[bytes | None]" = queue.SimpleQueue()
    state = {"threads": 0, "idle": 0}
    state_lock = threading.Lock()
    threads: list[threading.Thread] = []

    def serve() -> None:
        while True:
            with state_lock:
                state["idle"] += 1
            line = requests.get()
            with state_lock:
                state["idle"] -= 1
            if line is None:
                return
            request_id, deadline_ms, command = line.decode().rstrip("\n").split("\t", 2)
            if time.time() * 1000 >= float(deadline_ms):
                r, out, outs = -110, "", "deadline passed before it was sent"
            else:
                try:
                    r, outbuf, outs = cluster.mon_command(command, b"")
                    out = outbuf.decode("utf-8", "replace")
                except Exception as error:  # noqa: BLE001
                    r, out, outs = -5, "", f"{type(error).__name__}: {error}"
            emit({"id": int(request_id), "r": r, "rs": outs, "out": out})

    emit({"ready": True})
    for line in sys.stdin.buffer:
        with state_lock:
            start = state["idle"] == 0 and state["threads"] < args.threads_max
            if start:
                state["threads"] += 1
        if start:
            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            threads.append(thread)
        requests.put(line)
    for _ in threads:
        requests.put(None)
    for thread in threads:
        thread.join(timeout=args.op_timeout_s + 1)
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
