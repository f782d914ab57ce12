#!/usr/bin/env bash
# The real parts for development and tests: single-node Apache Kafka (KRaft) and Redis.
#
#   deploy/stack.sh fetch    fetch the Kafka jars from Maven Central into the cache (once)
#   deploy/stack.sh up       format storage (first time), start Kafka and Redis, wait until both
#                            answer (including a transactional producer's init_transactions),
#                            create the topics
#   deploy/stack.sh down     stop both cleanly (SIGTERM, then SIGKILL after 30 s)
#   deploy/stack.sh status   say what runs
#
# Settings (environment):
#   ALERTFORMER_STACK_DIR     data, logs and pid files            (default: <repo>/.stack/default)
#   ALERTFORMER_CACHE         where the Kafka jars are kept        (default: ~/.cache/alertformer)
#   KAFKA_PORT                client listener on 127.0.0.1         (default: 9092)
#   KAFKA_CONTROLLER_PORT     KRaft controller listener            (default: 9093)
#   REDIS_PORT                Redis on 127.0.0.1                   (default: 6379)
#   KAFKA_HEAP                JVM heap                             (default: 512m)
#   ALERTFORMER_CONFIG        config file whose topics are created (default: built-in defaults)
#   KAFKA_SUPER_USER          set (with KAFKA_SUPER_PASSWORD): the client listener is SASL_PLAINTEXT with
#                             SCRAM-SHA-512 and ACLs (StandardAuthorizer, nothing allowed without one);
#                             this user is the super user (and the broker's own)  (default: no SASL, no ACLs)
#   KAFKA_SCRAM_USERS         more SCRAM-SHA-512 users, "name:password name:password", created when the
#                             storage is formatted (their ACLs are yours to create)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kafka_version=4.1.1
stack_dir=${ALERTFORMER_STACK_DIR:-$repo/.stack/default}
cache=${ALERTFORMER_CACHE:-$HOME/.cache/alertformer}
libs=$cache/kafka-$kafka_version/libs
kafka_port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
redis_port=${REDIS_PORT:-6379}
heap=${KAFKA_HEAP:-512m}
super_user=${KAFKA_SUPER_USER:-}
super_password=${KAFKA_SUPER_PASSWORD:-}
scram_users=${KAFKA_SCRAM_USERS:-}
python=${PYTHON:-python3}
ready_timeout_s=120

say() { printf 'stack: %s\n' "$*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

fetch() {
  if [ -f "$libs/kafka_2.13-$kafka_version.jar" ]; then return; fi
  say "fetching Kafka $kafka_version jars from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -q -B -f "$repo/deploy/kafka/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$kafka_version" -DincludeScope=runtime -DoutputDirectory="$libs"
}

jvm_opts=(-Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$stack_dir/log4j2.properties" -cp "$libs/*")

write_config() {
  mkdir -p "$stack_dir/logs" "$stack_dir/redis"
  local listener=PLAINTEXT
  if [ -n "$super_user" ]; then listener=SASL_PLAINTEXT; fi
  cat > "$stack_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=$listener://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=$listener://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=$listener
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$listener:$listener
log.dirs=$stack_dir/kafka-data
num.partitions=4
auto.create.topics.enable=false
# A single node: internal topics must not wait for replicas that will never exist,
# or consumer groups and transactions hang.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests join and leave groups constantly; the default 3 s delay would slow every one.
group.initial.rebalance.delay.ms=0
# Keep disk use small on a development machine.
log.retention.hours=24
log.segment.bytes=104857600
PROPS
  if [ -n "$super_user" ]; then
    # The controller listener stays PLAINTEXT on 127.0.0.1; its principal (ANONYMOUS) is the broker talking
    # to its own controller and must be a super user. Clients get only what ACLs allow.
    cat >> "$stack_dir/server.properties" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$super_user" password="$super_password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:$super_user;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
PROPS
  fi
  cat > "$stack_dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $stack_dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
}

start_kafka() {
  if alive "$stack_dir/kafka.pid"; then say "Kafka already running (pid $(cat "$stack_dir/kafka.pid"))"; return; fi
  write_config
  if [ ! -f "$stack_dir/kafka-data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java "${jvm_opts[@]}" kafka.tools.StorageTool random-uuid)
    local scram=() user
    if [ -n "$super_user" ]; then
      for user in "$super_user:$super_password" $scram_users; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]")
      done
    fi
    java "${jvm_opts[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$stack_dir/server.properties" "${scram[@]}" > "$stack_dir/logs/format.log" 2>&1
    say "formatted KRaft storage in $stack_dir/kafka-data (cluster $cluster_id)"
  fi
  nohup java "${jvm_opts[@]}" kafka.Kafka "$stack_dir/server.properties" > "$stack_dir/logs/kafka.out" 2>&1 &
  echo $! > "$stack_dir/kafka.pid"
  say "Kafka starting on 127.0.0.1:$kafka_port (pid $!, logs in $stack_dir/logs)"
}

start_redis() {
  if alive "$stack_dir/redis.pid"; then say "Redis already running (pid $(cat "$stack_dir/redis.pid"))"; return; fi
  mkdir -p "$stack_dir/redis" "$stack_dir/logs"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$stack_dir/redis" \
    --daemonize yes --pidfile "$stack_dir/redis.pid" --logfile "$stack_dir/logs/redis.log" \
    --save "" --appendonly no
  say "Redis starting on 127.0.0.1:$redis_port"
}

stop_pid() {
  local name=$1 pidfile=$2 waited=0
  if ! alive "$pidfile"; then rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then say "$name did not stop in 30 s; killing"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  say "$name stopped"
}

up() {
  fetch
  command -v redis-server > /dev/null || { say "redis-server not found: run deploy/install.sh"; exit 1; }
  start_redis
  start_kafka
  local sasl_env=()
  if [ -n "$super_user" ]; then
    sasl_env=(ALERTFORMER_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT ALERTFORMER_KAFKA__SASL_MECHANISM=SCRAM-SHA-512
              "ALERTFORMER_KAFKA__SASL_USERNAME=$super_user" "ALERTFORMER_KAFKA__SASL_PASSWORD=$super_password")
  fi
  if ! env "${sasl_env[@]}" "$python" -m alertformer.cli health --bootstrap "127.0.0.1:$kafka_port" \
      --redis-url "redis://127.0.0.1:$redis_port/0" --timeout-s "$ready_timeout_s" --create-topics; then
    say "the stack did not become ready; last lines of the Kafka log:"
    tail -n 20 "$stack_dir/logs/kafka.out" "$stack_dir/logs/server.log" >&2 2>/dev/null || true
    exit 1
  fi
  say "ready: KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port REDIS_URL=redis://127.0.0.1:$redis_port/0"
}

down() {
  stop_pid Kafka "$stack_dir/kafka.pid"
  stop_pid Redis "$stack_dir/redis.pid"
}

status() {
  alive "$stack_dir/kafka.pid" && say "Kafka running (pid $(cat "$stack_dir/kafka.pid"), 127.0.0.1:$kafka_port)" || say "Kafka stopped"
  alive "$stack_dir/redis.pid" && say "Redis running (pid $(cat "$stack_dir/redis.pid"), 127.0.0.1:$redis_port)" || say "Redis stopped"
}

cd "$repo"
case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  -h|--help|help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
