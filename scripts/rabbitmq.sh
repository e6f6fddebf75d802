# Sourced by the side-by-side scripts: a throwaway RabbitMQ (Debian's package) on its own port,
# node name and directories under $WORK/rabbit, so it never touches a system RabbitMQ.
#   start_rabbitmq NODE PORT [CPUS]   installs it if missing; pins it to CPUS (with as many Erlang
#                                     schedulers) when given; sets RABBIT_PID and RABBIT_VERSION
#                                     with RABBIT_TLS_PORT, RABBIT_TLS_CERT and RABBIT_TLS_KEY set,
#                                     also an AMQPS listener (listeners.ssl, ssl_options.*)
#   stop_rabbitmq                     stops it (no-op when not running)
RABBIT_BIN=/usr/lib/rabbitmq/bin

start_rabbitmq() {
    local cpus=${3:-} erl_args="" pin=()
    RABBIT_NODE=$1
    local port=$2
    if ! command -v "$RABBIT_BIN/rabbitmq-server" >/dev/null; then
        echo "installing rabbitmq-server from Debian..." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    if [ -n "$cpus" ]; then
        local n
        n=$(echo "$cpus" | tr ',' '\n' | wc -l)
        erl_args="+S $n:$n"
        pin=(taskset -c "$cpus")
    fi
    mkdir -p "$WORK/rabbit/mnesia" "$WORK/rabbit/log"
    echo '[].' > "$WORK/rabbit/enabled_plugins"
    : > "$WORK/rabbit/rabbitmq.conf"
    if [ -n "${RABBIT_TLS_PORT:-}" ]; then
        cat > "$WORK/rabbit/rabbitmq.conf" <<CONF
listeners.ssl.default = $RABBIT_TLS_PORT
ssl_options.certfile = $RABBIT_TLS_CERT
ssl_options.keyfile = $RABBIT_TLS_KEY
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
    fi
    (
        export HOME=$WORK/rabbit RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_PORT=$port \
            RABBITMQ_DIST_PORT=$((port + 20000)) RABBITMQ_MNESIA_BASE=$WORK/rabbit/mnesia \
            RABBITMQ_LOG_BASE=$WORK/rabbit/log RABBITMQ_ENABLED_PLUGINS_FILE=$WORK/rabbit/enabled_plugins \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$erl_args" RABBITMQ_CONFIG_FILE=$WORK/rabbit/rabbitmq.conf
        exec "${pin[@]}" "$RABBIT_BIN/rabbitmq-server" > "$WORK/rabbit/out" 2>&1
    ) &
    for _ in $(seq 1 120); do
        grep -q "completed with" "$WORK/rabbit/out" 2>/dev/null && break
        sleep 0.5
    done
    RABBIT_PID=$(HOME=$WORK/rabbit "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" status 2>/dev/null | awk '/OS PID/ {print $3}')
    [ -n "$RABBIT_PID" ] || { echo "RabbitMQ did not start:" >&2; cat "$WORK/rabbit/out" >&2; exit 1; }
    RABBIT_VERSION=$(HOME=$WORK/rabbit "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" version 2>/dev/null || echo "?")
}

stop_rabbitmq() {
    if [ -n "${RABBIT_PID:-}" ]; then
        HOME=$WORK/rabbit "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" stop >/dev/null 2>&1 || kill "$RABBIT_PID" 2>/dev/null || true
        RABBIT_PID=
    fi
}
