"""Serves Keystone's WSGI application on 127.0.0.1 for the tests (scripts/keystone.sh).

Arguments: the keystone.conf, a file to write the chosen port to, and optionally a process id
to outlive no longer. The standard library's threaded WSGI server is enough for tests and needs
nothing beyond Keystone itself.
"""

import os
import sys
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def alive(pid):
    """Whether the process runs (a zombie does not: its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def watch(pid):
    while alive(pid):
        time.sleep(1)
    os._exit(0)


def main():
    config, port_file = sys.argv[1], sys.argv[2]
    watch_pid = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = config
    # oslo.config parses sys.argv when Keystone initialises: leave it none of ours.
    sys.argv = sys.argv[:1]
    from keystone.server import wsgi

    app = wsgi.initialize_public_application()
    httpd = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=QuietHandler)
    if watch_pid:
        threading.Thread(target=watch, args=(watch_pid,), daemon=True).start()
    with open(port_file + ".tmp", "w") as f:
        f.write(str(httpd.server_port))
    os.rename(port_file + ".tmp", port_file)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
