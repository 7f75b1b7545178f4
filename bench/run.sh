#!/usr/bin/env bash
# bench/run.sh — Bulwark's benchmark harness (see bench/README.md).
#
# Builds what it needs, installs wrk and nginx from Debian packages if they are
# missing, starts a Go upstream that returns ~1 KiB of JSON and every proxy in
# front of it on 127.0.0.1, measures each target with wrk (warm-up, then
# BENCH_RUNS runs, the median run by requests/s is kept), prints a table and
# writes bench/RESULTS.md. Every process it starts is stopped on exit.
#
#   bash bench/run.sh                                     # published figures
#   BENCH_DURATION=3s BENCH_RUNS=1 bash bench/run.sh      # quick trial (marked TRIAL)
#
# Knobs: BENCH_DURATION (10s), BENCH_RUNS (3), BENCH_CONNS (64),
#        BENCH_THREADS (2), BENCH_WARMUP (2s), BENCH_PATH (/open-banking/v4.0/aisp/accounts/acc_7f3e9b2c41d84a6e),
#        BENCH_KEEP_AUDIT=1 keeps bench/out/audit-*.log (deleted after counting by default),
#        BENCH_REDIS_URL (redis://127.0.0.1:6379/0; the Redis-backed limit is skipped if it does not answer).
#
# HOW TO ADD A TARGET (later issues: a Bulwark config with JWT, rate limit,
# validation, ...):
#   1. In start_servers, start the server with   start_bg NAME CMD ARGS...
#      (it is then stopped on exit; its output goes to bench/out/NAME.log),
#      using a port from   PORT[name]   (add the name to PORT_NAMES) and the
#      shared certificate $CERT / $KEY; for a Bulwark config, write it with a
#      write_variant (it checks it with `bulwark check`) and start_variant.
#   2. Wait for it with   wait_up NAME URL
#   3. Register it with   add_target KEY "Label for the table" URL
#      Targets are measured and listed in the order they are added. The key
#      "bulwark" is the one the headline ratios are computed for; the keys
#      "nginx", "bare-default" and "bare-tuned" are the ratio columns.
# Nothing else needs to change: measure KEY URL does warm-up, runs, median and
# parsing, and the table and RESULTS.md are built from the registered list.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH=$ROOT/bench
BIN=$BENCH/bin
OUT=$BENCH/out
RESULTS=$BENCH/RESULTS.md

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-2s}
REQ_PATH=${BENCH_PATH:-/open-banking/v4.0/aisp/accounts/acc_7f3e9b2c41d84a6e}
ADMIN_TOKEN=bench-admin-token-0123456789

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNS must be a positive integer, got '$CONNS'"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer, got '$THREADS'"
(( CONNS >= THREADS )) || die "BENCH_CONNS ($CONNS) must be at least BENCH_THREADS ($THREADS)"

# seconds DURATION: wrk's duration syntax (3, 3s, 2m, 1h) in seconds.
seconds() {
	local d=$1
	case $d in
	*h) echo $(( ${d%h} * 3600 )) ;;
	*m) echo $(( ${d%m} * 60 )) ;;
	*s) echo $(( ${d%s} )) ;;
	*) echo $(( d )) ;;
	esac
}
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "BENCH_DURATION must look like 10s, 2m or 10, got '$DURATION'"
[[ $WARMUP =~ ^[1-9][0-9]*[smh]?$ ]] || die "BENCH_WARMUP must look like 2s, got '$WARMUP'"
TRIAL=0
if (( $(seconds "$DURATION") < 10 || RUNS < 3 )); then TRIAL=1; fi

# ---------------------------------------------------------------- processes

PIDS=()  # every process we started, in start order
NAMES=()
NGINX_PID=""

start_bg() { # start_bg NAME CMD ARGS... — run in the background, logged, stopped on exit
	local name=$1; shift
	"$@" >"$OUT/$name.log" 2>&1 &
	PIDS+=("$!")
	NAMES+=("$name")
	log "started $name (pid $!)"
}

stop_all() {
	local i pid n
	for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do
		pid=${PIDS[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for (( n = 0; n < 100; n++ )); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "${NAMES[i]} (pid $pid) ignored SIGTERM for 10s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
	NAMES=()
	# nginx workers are children of the master we started; they exit with
	# it. Make sure of it, by the pid file nginx itself wrote.
	if [[ -n $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
		kill -KILL "$NGINX_PID" 2>/dev/null || true
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_all
	if (( rc != 0 )); then log "failed (exit $rc); server logs are in $OUT/"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_up() { # wait_up NAME URL — until URL answers (any HTTP status), at most 15s
	local name=$1 url=$2 i pid=${PIDS[${#PIDS[@]}-1]}
	for (( i = 0; i < 150; i++ )); do
		if curl -sk -o /dev/null --max-time 1 "$url"; then
			log "$name is up at $url"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$OUT/$name.log" >&2 || true
			die "$name exited before answering at $url (log: $OUT/$name.log)"
		fi
		sleep 0.1
	done
	tail -n 20 "$OUT/$name.log" >&2 || true
	die "$name did not answer at $url within 15s (log: $OUT/$name.log)"
}

# ---------------------------------------------------------------- tools

apt_install() { # apt_install PKG... — as root, or with passwordless sudo
	local sudo=()
	if (( EUID != 0 )); then
		if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			log "cannot install $* : not root and no passwordless sudo"
			return 1
		fi
	fi
	command -v apt-get >/dev/null || { log "cannot install $* : no apt-get on this machine"; return 1; }
	log "installing $* from Debian packages"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$OUT/apt.log" 2>&1 &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$OUT/apt.log" 2>&1
}

find_nginx() {
	command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

install_tools() {
	if ! command -v wrk >/dev/null; then
		apt_install wrk || die "wrk is missing and could not be installed (see $OUT/apt.log); install it and re-run"
	fi
	NGINX=$(find_nginx)
	if [[ -z $NGINX ]]; then
		if apt_install nginx-light || apt_install nginx; then
			NGINX=$(find_nginx)
		fi
		if [[ -z $NGINX ]]; then
			log "WARNING: nginx is missing and could not be installed (see $OUT/apt.log): the nginx baseline is SKIPPED"
		fi
	fi
	# The Debian package may have started the system nginx service (it binds
	# port 80). We never use or touch it: our nginx runs with its own config.
}

# ---------------------------------------------------------------- build

build() {
	log "building into $BIN/"
	mkdir -p "$BIN"
	go build -o "$BIN/bulwark" ./cmd/bulwark
	go build -o "$BIN/" ./bench/cmd/upstream ./bench/cmd/bareproxy ./bench/cmd/certgen ./bench/cmd/freeport ./bench/cmd/tokens
}

# ---------------------------------------------------------------- servers

PORT_NAMES=(upstream nginx bare-default bare-tuned bulwark bulwark-admin)
for v in bulwark-jwt bulwark-authz bulwark-validate bulwark-data bulwark-waf bulwark-full bulwark-rl-local bulwark-rl-redis bulwark-noinv; do PORT_NAMES+=("$v" "$v-admin"); done
declare -A PORT

alloc_ports() {
	local ports i
	read -r -a ports <<<"$("$BIN/freeport" -n "${#PORT_NAMES[@]}")"
	for i in "${!PORT_NAMES[@]}"; do PORT[${PORT_NAMES[i]}]=${ports[i]}; done
}

write_nginx_config() {
	local d=$OUT/nginx
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
# Generated by bench/run.sh: nginx as a plain TLS reverse proxy, the baseline.
daemon off;
master_process on;
worker_processes auto;
pid $d/nginx.pid;
error_log $d/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path $d/tmp/client_body;
    proxy_temp_path       $d/tmp/proxy;
    fastcgi_temp_path     $d/tmp/fastcgi;
    uwsgi_temp_path       $d/tmp/uwsgi;
    scgi_temp_path        $d/tmp/scgi;

    upstream bench_upstream {
        server 127.0.0.1:${PORT[upstream]};
        keepalive 64;
    }

    server {
        listen 127.0.0.1:${PORT[nginx]} ssl;
        ssl_certificate     $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols       TLSv1.2 TLSv1.3;

        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# write_variant NAME TOP_YAML API_YAML — a Bulwark config (the pass-through
# one when TOP_YAML and API_YAML are empty), on the ports PORT[NAME] and PORT[NAME-admin], with extra
# top-level keys and extra keys for the API (each line indented for its
# place), written to $OUT/NAME.yaml and checked.
write_variant() {
	local name=$1 top=$2 api=$3
	cat >"$OUT/$name.yaml" <<EOF
# Generated by bench/run.sh: Bulwark variant "$name".
listeners:
  - addr: "127.0.0.1:${PORT[$name]}"
    tls: {cert_file: "$CERT", key_file: "$KEY"}
admin: {addr: "127.0.0.1:${PORT[$name-admin]}", token: "$ADMIN_TOKEN"}
limits: {max_in_flight: 100000, max_conns_per_ip: 100000}
audit: {path: "$OUT/audit-$name.log"}
log: {level: warn}
$top
apis:
  - name: bench
    upstream: {url: "http://127.0.0.1:${PORT[upstream]}"}
$api
EOF
	rm -f "$OUT/audit-$name.log"
	"$BIN/bulwark" check -c "$OUT/$name.yaml" >&2 || die "bulwark check rejected $OUT/$name.yaml"
}

# start_variant NAME LABEL — start a written variant and register it.
start_variant() {
	local name=$1 label=$2
	start_bg "$name" "$BIN/bulwark" gateway -c "$OUT/$name.yaml"
	wait_up "$name" "https://127.0.0.1:${PORT[$name]}/"
	add_target "$name" "$label" "https://127.0.0.1:${PORT[$name]}$REQ_PATH"
}

start_servers() {
	alloc_ports
	"$BIN/certgen" -dir "$OUT"
	CERT=$OUT/cert.pem
	KEY=$OUT/key.pem

	start_bg upstream "$BIN/upstream" -addr "127.0.0.1:${PORT[upstream]}"
	wait_up upstream "http://127.0.0.1:${PORT[upstream]}/"
	add_target upstream "direct upstream (HTTP, no proxy)" "http://127.0.0.1:${PORT[upstream]}$REQ_PATH"

	if [[ -n $NGINX ]]; then
		write_nginx_config
		"$NGINX" -t -q -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" ||
			die "nginx rejected $OUT/nginx/nginx.conf"
		start_bg nginx "$NGINX" -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log"
		wait_up nginx "https://127.0.0.1:${PORT[nginx]}/"
		NGINX_PID=$(cat "$OUT/nginx/nginx.pid" 2>/dev/null || true)
		add_target nginx "nginx TLS proxy" "https://127.0.0.1:${PORT[nginx]}$REQ_PATH"
	fi

	start_bg bare-default "$BIN/bareproxy" -addr "127.0.0.1:${PORT[bare-default]}" \
		-upstream "http://127.0.0.1:${PORT[upstream]}" -cert "$CERT" -key "$KEY"
	wait_up bare-default "https://127.0.0.1:${PORT[bare-default]}/"
	add_target bare-default "bare Go proxy (default transport)" "https://127.0.0.1:${PORT[bare-default]}$REQ_PATH"

	start_bg bare-tuned "$BIN/bareproxy" -tuned -addr "127.0.0.1:${PORT[bare-tuned]}" \
		-upstream "http://127.0.0.1:${PORT[upstream]}" -cert "$CERT" -key "$KEY"
	wait_up bare-tuned "https://127.0.0.1:${PORT[bare-tuned]}/"
	add_target bare-tuned "bare Go proxy (tuned pool)" "https://127.0.0.1:${PORT[bare-tuned]}$REQ_PATH"

	write_variant bulwark "" ""
	start_variant bulwark "Bulwark pass-through"

	# The same pass-through without the inventory: what the exchange
	# events (built per request, ingested on another goroutine) cost.
	write_variant bulwark-noinv "inventory: {disabled: true}" ""
	start_variant bulwark-noinv "Bulwark pass-through, inventory disabled"

	"$BIN/tokens" -dir "$OUT" -n "${BENCH_TOKENS:-100}"
	local idp="identity:
  - name: bench-idp
    jwt: {issuer: \"https://idp.bench.example\", audiences: [bench-api], jwks_file: \"$OUT/jwks.json\", algorithms: [ES256]}"
	local spec="    spec: \"$ROOT/bench/spec.yaml\""

	# The same gateway with JWT authentication: ES256 tokens verified
	# against a JWKS file, sent in rotation (tokens repeat, as in real
	# traffic), so the verified-token cache works as in production.
	# Control: pass-through driven by the same Lua token script as the JWT
	# targets (wrk's Lua request builder costs client CPU on the same
	# cores), so the JWT ratio compares like with like.
	add_target bulwark-script "Bulwark pass-through, same wrk token script" "https://127.0.0.1:${PORT[bulwark]}$REQ_PATH"
	SCRIPT[bulwark-script]=$OUT/tokens.lua

	write_variant bulwark-jwt "$idp" "    authenticate: [bench-idp]"
	start_variant bulwark-jwt "Bulwark + JWT ES256 (${BENCH_TOKENS:-100} tokens, repeating)"
	SCRIPT[bulwark-jwt]=$OUT/tokens.lua
	HDR[bulwark-jwt]="Authorization: Bearer $(cat "$OUT/token.txt")"

	# One inspection stage at a time, then everything but the WAF together.
	write_variant bulwark-validate "" "$spec
    validate: {requests: true, responses: true}"
	start_variant bulwark-validate "Bulwark + request and response validation"
	write_variant bulwark-data "" "    data: {mask: [pan], block: [private_key]}"
	start_variant bulwark-data "Bulwark + sensitive-data scan (mask PAN)"
	write_variant bulwark-waf "" "    waf: {crs: true, paranoia: 1}"
	start_variant bulwark-waf "Bulwark + WAF (OWASP CRS, paranoia 1)"
	# Authorization: three object rules (one on the measured operation) and
	# two business rules, behind the same JWT provider; compare with the
	# JWT target to isolate the stage.
	write_variant bulwark-authz "$idp" "$spec
    authenticate: [bench-idp]
    objects:
      - {operation: \"GET /accounts/{AccountId}\", allow: \"params.AccountId in identity.claims.account_ids\"}
      - {operation: \"GET /accounts/{AccountId}/balances\", allow: \"params.AccountId in identity.claims.account_ids\"}
      - {operation: \"GET /accounts/{AccountId}/transactions\", allow: \"params.AccountId in identity.claims.account_ids\"}
    rules:
      - {name: no-scripted-clients, when: \"'x-automation' in request.headers\", action: block}
      - {name: flag-foreign-tenant, when: \"has(identity.claims.tenant) && identity.claims.tenant != 'bank'\", action: flag}"
	start_variant bulwark-authz "Bulwark + JWT + authorization (3 object rules, 2 rules)"
	SCRIPT[bulwark-authz]=$OUT/tokens.lua
	HDR[bulwark-authz]=${HDR[bulwark-jwt]}

	# Rate limits: two limits per request (by address and by operation),
	# generous enough never to refuse, so every request pays the full
	# decision and the headers; wrk's connections all come from one
	# address, the worst case for contention on one key.
	local limits="    rate_limits:
      - {key: ip, rate: 1000000000/s}
      - {key: operation, rate: 1000000000/s}"
	write_variant bulwark-rl-local "" "$limits"
	start_variant bulwark-rl-local "Bulwark + rate limits (in-memory store)"
	local redis=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
	if redis-cli -u "$redis" ping >/dev/null 2>&1; then
		write_variant bulwark-rl-redis "cluster: {redis_url: \"$redis\"}" "$limits"
		start_variant bulwark-rl-redis "Bulwark + rate limits (Redis store, shared)"
	else
		log "Redis at $redis does not answer: the Redis-backed rate-limit target is skipped"
	fi

	write_variant bulwark-full "$idp" "$spec
    authenticate: [bench-idp]
    validate: {requests: true, responses: true}
    data: {mask: [pan], block: [private_key]}"
	start_variant bulwark-full "Bulwark + JWT + validation + data (no WAF)"
	SCRIPT[bulwark-full]=$OUT/tokens.lua
	HDR[bulwark-full]=${HDR[bulwark-jwt]}
}

# ---------------------------------------------------------------- measuring

TARGETS=()          # keys, in order
declare -A LABEL URL
declare -A RPS P50 P99 NOTE REQS
declare -A SCRIPT HDR   # optional per target: a wrk Lua script, and a header for the curl sanity check

add_target() { # add_target KEY LABEL URL
	TARGETS+=("$1")
	LABEL[$1]=$2
	URL[$1]=$3
}

# to_ms VALUE — wrk's latency (e.g. 812.00us, 1.25ms, 1.02s, 1.00m) in ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/)      { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/)  { sub(/s$/, "", v);  printf "%.3f", v * 1000 }
		else if (v ~ /m$/)  { sub(/m$/, "", v);  printf "%.3f", v * 60000 }
		else if (v ~ /h$/)  { sub(/h$/, "", v);  printf "%.3f", v * 3600000 }
		else { printf "nan" } }'
}

# sanity KEY — one request with curl: status 200 and the upstream's body size.
sanity() {
	local key=$1 got
	got=$(curl -sk -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' ${HDR[$key]:+-H "${HDR[$key]}"} "${URL[$key]}") ||
		die "${LABEL[$key]}: request to ${URL[$key]} failed"
	[[ $got == "200 $BODY_SIZE" ]] ||
		die "${LABEL[$key]}: expected 200 with a $BODY_SIZE-byte body from ${URL[$key]}, got status/bytes '$got'"
}

measure() { # measure KEY URL — warm-up, RUNS runs, keep the median run by req/s
	local key=$1 url=$2 i f rps reqs non2xx sockerr lines=() median
	sanity "$key"
	log "measuring ${LABEL[$key]}: warm-up $WARMUP, then $RUNS x $DURATION ($url)"
	local script=()
	if [[ -n ${SCRIPT[$key]:-} ]]; then script=(-s "${SCRIPT[$key]}"); fi
	wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${script[@]}" "$url" >"$OUT/wrk/$key-warmup.txt" 2>&1 ||
		die "wrk failed on ${LABEL[$key]} warm-up: $(tail -n 3 "$OUT/wrk/$key-warmup.txt")"
	REQS[$key]=$(awk '/requests in/ {print $1}' "$OUT/wrk/$key-warmup.txt")
	for (( i = 1; i <= RUNS; i++ )); do
		f=$OUT/wrk/$key-run$i.txt
		wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${script[@]}" "$url" >"$f" 2>&1 ||
			die "wrk failed on ${LABEL[$key]} run $i: $(tail -n 3 "$f")"
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
		reqs=$(awk '/requests in/ {print $1}' "$f")
		[[ -n $rps && -n $reqs ]] || die "could not parse wrk output $f"
		REQS[$key]=$(( ${REQS[$key]:-0} + reqs ))
		non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
		sockerr=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$f")
		log "  run $i: $rps req/s, p50 $(awk '$1 == "50%" {print $2}' "$f"), p99 $(awk '$1 == "99%" {print $2}' "$f")${non2xx:+, $non2xx non-2xx}${sockerr:+, $sockerr socket errors}"
		lines+=("$rps $i ${non2xx:-0} ${sockerr:-0}")
	done
	# median by req/s (for an even count, the lower of the two middle runs)
	median=$(printf '%s\n' "${lines[@]}" | sort -n -k1,1 | sed -n "$(( (RUNS + 1) / 2 ))p")
	read -r rps i non2xx sockerr <<<"$median"
	f=$OUT/wrk/$key-run$i.txt
	RPS[$key]=$rps
	P50[$key]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	P99[$key]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	NOTE[$key]=""
	local all_non2xx all_sockerr
	all_non2xx=$(cat "$OUT"/wrk/"$key"-run*.txt | awk '/Non-2xx or 3xx responses:/ {s += $NF} END {print s + 0}')
	all_sockerr=$(cat "$OUT"/wrk/"$key"-run*.txt | awk '/Socket errors:/ {gsub(/,/, ""); s += $4 + $6 + $8 + $10} END {print s + 0}')
	if (( all_non2xx > 0 || all_sockerr > 0 )); then
		NOTE[$key]="$all_non2xx non-2xx responses and $all_sockerr socket errors over all runs (see bench/out/wrk/$key-run*.txt)"
		log "  WARNING: ${LABEL[$key]}: ${NOTE[$key]}"
	fi
}

ratio() { # ratio A B — A/B to 2 decimals, or n/a
	awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2fx", a / b }'
}

# ---------------------------------------------------------------- reporting

machine_info() {
	local cpu mem
	cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
	mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || true)
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "- Go: $(go version)"
	echo "- Kernel: $(uname -r)"
	echo "- CPU: ${cpu:-unknown} — $(nproc) cores available"
	echo "- Memory: ${mem:-unknown}"
	if [[ -n $NGINX ]]; then
		echo "- nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes auto"
	else
		echo "- nginx: not available (baseline skipped)"
	fi
	echo "- wrk: $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}' || true)"
	echo "- wrk parameters: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\`, warm-up $WARMUP, $RUNS run(s) per target, median run by requests/s"
	echo "- Request: GET $REQ_PATH, response $BODY_SIZE bytes of JSON (application/json); TLS targets serve the same self-signed ECDSA P-256 certificate"
	echo "- Placement: wrk, the proxy under test and the upstream all run on this machine and share its $(nproc) cores (nothing pinned); loopback only"
}

table() { # markdown table of all targets
	local k
	echo "| target | req/s | p50 ms | p99 ms | vs nginx | vs bare Go proxy (default) | vs bare Go (tuned) |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for k in "${TARGETS[@]}"; do
		printf '| %s | %.0f | %.2f | %.2f | %s | %s | %s |\n' "${LABEL[$k]}" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" \
			"$(ratio "${RPS[$k]}" "${RPS[nginx]:-}")" \
			"$(ratio "${RPS[$k]}" "${RPS[bare-default]:-}")" \
			"$(ratio "${RPS[$k]}" "${RPS[bare-tuned]:-}")"
	done
}

terminal_table() { # the same table, aligned for a terminal
	local k
	printf '%-36s %9s %8s %8s %9s %13s %11s\n' target req/s "p50 ms" "p99 ms" "vs nginx" "vs bare(def)" "vs tuned"
	for k in "${TARGETS[@]}"; do
		printf '%-36s %9.0f %8.2f %8.2f %9s %13s %11s\n' "${LABEL[$k]}" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" \
			"$(ratio "${RPS[$k]}" "${RPS[nginx]:-}")" \
			"$(ratio "${RPS[$k]}" "${RPS[bare-default]:-}")" \
			"$(ratio "${RPS[$k]}" "${RPS[bare-tuned]:-}")"
	done
}

headline() {
	local vb vn vt
	vb=$(ratio "${RPS[bulwark]:-}" "${RPS[bare-default]:-}")
	vt=$(ratio "${RPS[bulwark]:-}" "${RPS[bare-tuned]:-}")
	vn=$(ratio "${RPS[bulwark]:-}" "${RPS[nginx]:-}")
	echo "**Bulwark pass-through = $vb the bare Go reverse proxy; $vn nginx.**"
	echo
	echo "Against a bare Go reverse proxy whose upstream keep-alive pool is sized for load (512"
	echo "idle connections per host, Bulwark's default), Bulwark pass-through is $vt. Go's default"
	echo "transport keeps only 2 idle connections per upstream host, so under $CONNS concurrent"
	echo "connections the default bare proxy dials most upstream requests anew; pool sizing alone"
	echo "makes the bare proxy $(ratio "${RPS[bare-tuned]:-}" "${RPS[bare-default]:-}") of its default self. Read Bulwark's"
	echo "lead over the default bare proxy with that in mind. What remains between the tuned bare"
	echo "proxy and Bulwark is mostly allocation: httputil.ReverseProxy without a BufferPool"
	echo "allocates a 32 KiB copy buffer per response, which Bulwark recycles from a pool (not"
	echo "profiled side by side)."
	if [[ -n ${RPS[bulwark-jwt]:-} ]]; then
		echo
		echo "**Bulwark with JWT (ES256) authentication = $(ratio "${RPS[bulwark-jwt]:-}" "${RPS[bulwark-script]:-}") of Bulwark pass-through driven by the same wrk token script** ($(ratio "${RPS[bulwark-jwt]:-}" "${RPS[bulwark]:-}") of plain pass-through; target: at least 0.80x), with ${BENCH_TOKENS:-100} distinct tokens sent in rotation: each distinct token costs one signature check, then hits the verified-token cache (cost per distinct token below)."
	fi
	if [[ -n ${RPS[bulwark-authz]:-} ]]; then
		echo
		echo "**Authorization stage (three object rules, two business rules, CEL) = $(ratio "${RPS[bulwark-authz]:-}" "${RPS[bulwark-jwt]:-}") of the same gateway with JWT only** (both driven by the same token script)."
	fi
	echo
	echo "**Inventory and detectors (exchange events on every request, ingested off the request path): pass-through with them $(ratio "${RPS[bulwark]:-}" "${RPS[bulwark-noinv]:-}") of pass-through without them.**"
	echo
	echo "**Rate limiting as a ratio to Bulwark pass-through in this run: in-memory store $(ratio "${RPS[bulwark-rl-local]:-}" "${RPS[bulwark]:-}"), Redis store $(ratio "${RPS[bulwark-rl-redis]:-}" "${RPS[bulwark]:-}")** (two limits per request, every request counted; both limits decided in one Redis round trip)."
	echo
	echo "Each inspection stage as a ratio to Bulwark pass-through in this run: request and response validation $(ratio "${RPS[bulwark-validate]:-}" "${RPS[bulwark]:-}"), sensitive-data scan $(ratio "${RPS[bulwark-data]:-}" "${RPS[bulwark]:-}"), WAF $(ratio "${RPS[bulwark-waf]:-}" "${RPS[bulwark]:-}"); JWT + validation + data together $(ratio "${RPS[bulwark-full]:-}" "${RPS[bulwark]:-}") of pass-through and $(ratio "${RPS[bulwark-full]:-}" "${RPS[nginx]:-}") of nginx (SPEC target for full protection: 0.5x nginx; rate limiting and the WAF are measured apart)."
}

gobench() { # gobench PATTERN PKG [FLAGS...] — benchmark lines, or "not available"
	local pattern=$1 pkg=$2 out
	shift 2
	local name=${pattern#^} open=""
	# An anchored pattern (^Name$) names one benchmark; an open one
	# (BenchmarkScan) every benchmark whose name starts with it.
	[ "${name%\$}" != "$name" ] && open="("
	name=${name%\$}
	if ! grep -qs "func ${name}${open}" "$pkg"/*_test.go; then
		echo "not available (no ${name} in $pkg)"
		return
	fi
	if out=$(go test -run '^$' -bench "$pattern" -benchmem -count=1 "$@" "$pkg" 2>&1); then
		echo '```'
		grep -E '^(Benchmark|goos|goarch|cpu|pkg)' <<<"$out" || echo "$out"
		echo '```'
	else
		echo "failed:"
		echo '```'
		tail -n 20 <<<"$out"
		echo '```'
	fi
}

# ---------------------------------------------------------------- main

main() {
	mkdir -p "$OUT/wrk"
	rm -f "$OUT"/wrk/*.txt
	command -v go >/dev/null || die "go is not on PATH"
	command -v curl >/dev/null || die "curl is not on PATH"
	install_tools
	build
	BODY_SIZE=$("$BIN/upstream" -print-size)
	start_servers

	local k
	for k in "${TARGETS[@]}"; do
		measure "$k" "${URL[$k]}"
	done

	log "stopping servers"
	stop_all

	local audit_lines=0 audit_note
	if [[ -f $OUT/audit-bulwark.log ]]; then
		audit_lines=$(wc -l <"$OUT/audit-bulwark.log")
	fi
	audit_note="Audit log written by the pass-through Bulwark during the run: $audit_lines records for $(( ${REQS[bulwark]:-0} + ${REQS[bulwark-script]:-0} )) requests sent by wrk to it (both pass-through targets) (wrk does not count the up to $CONNS requests in flight when each of its runs stops, nor the readiness and sanity requests of this script, so the audit count is slightly higher)."
	if [[ ${BENCH_KEEP_AUDIT:-0} != 1 ]]; then rm -f "$OUT"/audit*.log; fi

	log "running Go micro-benchmarks (route matching, audit write)"
	local match_cost audit_cost
	match_cost=$(gobench '^BenchmarkMatch' ./internal/spec)
	audit_cost=$(gobench '^BenchmarkWrite' ./internal/audit)
	local jwt_cost
	jwt_cost=$(gobench '^BenchmarkVerify' ./internal/identity/jwtauth)
	local scan_cost
	scan_cost=$(gobench '^BenchmarkScan' ./internal/dlp)
	local ingest_cost detect_cost
	ingest_cost=$(gobench '^BenchmarkIngest$' ./internal/inventory -cpu 1)
	detect_cost=$(gobench '^BenchmarkObserve$' ./internal/detect -cpu 1)

	local notes="" warn=""
	for k in "${TARGETS[@]}"; do
		if [[ -n ${NOTE[$k]} ]]; then notes+="- ${LABEL[$k]}: ${NOTE[$k]}"$'\n'; fi
	done
	if [[ -z $NGINX ]]; then warn="nginx could not be installed: the nginx baseline was skipped and the nginx ratios are n/a."; fi

	{
		if (( TRIAL )); then
			echo "> **TRIAL RUN (short durations) — not the published figures.**"
			echo "> Produced by \`BENCH_DURATION=$DURATION BENCH_RUNS=$RUNS bash bench/run.sh\`; run \`bash bench/run.sh\` with the defaults on a quiet machine for real numbers."
			echo
		fi
		echo "# Bulwark benchmark results"
		echo
		echo "Generated by \`bash bench/run.sh\` (see bench/README.md for what each target is and the caveats)."
		echo
		echo "## Machine and parameters"
		echo
		machine_info
		echo
		echo "## Throughput and latency"
		echo
		table
		echo
		echo "Ratios are requests/s of the row's target divided by that of the column's baseline, measured in the same run."
		if [[ -n $warn ]]; then echo; echo "**$warn**"; fi
		if [[ -n $notes ]]; then echo; echo "Errors seen during the runs:"; echo; printf '%s' "$notes"; fi
		echo
		headline
		echo
		echo "$audit_note"
		echo
		echo "## Caveats"
		echo
		echo "- Loopback only: no network latency or bandwidth limit; this measures per-request CPU cost."
		echo "- wrk, the proxy under test and the upstream share $(nproc) cores, so a proxy that uses less CPU also leaves more for wrk and the upstream; nothing is pinned."
		echo "- wrk speaks HTTP/1.1 only (keep-alive, TLS session per connection, no HTTP/2), $CONNS connections opened once per run: TLS handshake cost is not measured."
		echo "- Bulwark pass-through includes its audit log (one JSON line with a SHA-256 chain per request, written to bench/out/audit-bulwark.log) and its metrics; the other proxies log nothing."
		echo
		echo "## Route matching cost"
		echo
		echo "\`go test -run '^\$' -bench BenchmarkMatch -benchmem ./internal/spec/\` (BenchmarkMatch routes concrete requests over the largest shared spec, UK Open Banking payment initiation v4):"
		echo
		echo "$match_cost"
		echo
		echo "## Audit write cost"
		echo
		echo "\`go test -run '^\$' -bench BenchmarkWrite -benchmem ./internal/audit/\`:"
		echo
		echo "$audit_cost"
		echo
		echo "## JWT verification cost"
		echo
		echo "\`go test -run '^\$' -bench BenchmarkVerify -benchmem ./internal/identity/jwtauth/\` (Uncached: one signature check per distinct token; Cached: a repeated token):"
		echo
		echo "$jwt_cost"
		echo
		echo "## Sensitive-data scanner throughput"
		echo
		echo "\`go test -run '^\$' -bench BenchmarkScan -benchmem ./internal/dlp/\` (one core; BenchmarkScanJSONNoMatch is about 64 KiB of bank JSON without sensitive values; target 200 MB/s):"
		echo
		echo "$scan_cost"
		echo
		echo "## Inventory ingestion and detectors (one core)"
		echo
		echo "\`go test -run '^\$' -bench 'BenchmarkIngest\$' -cpu 1 ./internal/inventory/\` and the same for BenchmarkObserve in ./internal/detect/ (target: at least 50,000 events/s on one core; events/s is in the events/s column). Both run on the event bus's goroutine: a request only queues its event (bounded, dropped and counted when full), so persistence and detection never block the request path."
		echo
		echo "$ingest_cost"
		echo
		echo "$detect_cost"
	} >"$RESULTS"

	echo
	if (( TRIAL )); then echo "TRIAL RUN (short durations) — not the published figures"; fi
	terminal_table
	echo
	headline | sed -n '1s/\*//gp'
	if [[ -n $notes ]]; then printf '\nErrors:\n%s' "$notes"; fi
	echo
	echo "$audit_note"
	log "wrote $RESULTS"
}

main "$@"
