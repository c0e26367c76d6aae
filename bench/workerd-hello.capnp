# Cloudflare workerd serving the bench's hello Worker (see bench/baselines.py).
# The socket's address is a placeholder: the bench passes each process its
# own SO_REUSEPORT listening socket with `--socket-fd http=<fd>`.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "hello", worker = .helloWorker)],
  sockets = [(name = "http", address = "127.0.0.1:8080", http = (), service = "hello")],
);

const helloWorker :Workerd.Worker = (
  modules = [(name = "worker", esModule = embed "workerd-hello.js")],
  compatibilityDate = "2024-09-23",
);
