#!/usr/bin/env bash
# scripts/test-servers.sh — real storage servers on 127.0.0.1 for replicator's
# integration and conformance tests.
#
#   scripts/test-servers.sh install        install the servers at pinned versions (idempotent)
#   scripts/test-servers.sh start          start them all, wait until ready, create the test
#                                          bucket/container, write the env file, print its path
#   scripts/test-servers.sh stop           stop what `start` started, remove its data (idempotent)
#   scripts/test-servers.sh status         show which servers are running
#   scripts/test-servers.sh env [--path]   print the env file (or only its path)
#   scripts/test-servers.sh run -- CMD...  start, run CMD with the env loaded, stop afterwards
#                                          (also on failure or Ctrl-C); exits with CMD's status
#
# Typical use:  scripts/test-servers.sh run -- go test -race ./...
#
# Servers (all on 127.0.0.1, non-default ports):
#   S3        versitygw (posix backend)         bucket "replicator-test"
#   GCS       fake-gcs-server (filesystem)      bucket "replicator-test"
#   Azure     Azurite blob, dev account         container "replicator-test"
#   SFTP      Debian OpenSSH sshd, own config,  internal-sftp starting in TEST_SFTP_ROOT
#             run by the invoking user; only that user can log in, with a generated key
#   faults    toxiproxy server                  (tests create their own proxies)
#   S3 (opt.) MinIO, only with REPLICATOR_TEST_MINIO=1 (a slow, large build)
#
# Environment:
#   REPLICATOR_TEST_STATE      state dir (pids, logs, keys, data, env file).
#                              Default for start/stop/env/status: /tmp/replicator-test-servers-$UID.
#                              `run` uses a fresh temp dir unless this is set.
#   REPLICATOR_TEST_TOOLS      where tools are installed (default ~/.cache/replicator-test-servers)
#   REPLICATOR_TEST_PORT_BASE  fixed ports: s3=BASE gcs=+1 azure=+2 sftp=+3 toxiproxy=+4 minio=+5
#                              (default: free ports picked at random from 20000-31999)
#   REPLICATOR_TEST_START_TIMEOUT  seconds to wait for all servers to be ready (default 120)
#   REPLICATOR_TEST_MINIO=1    also install/start MinIO (TEST_MINIO_* variables)
#   REPLICATOR_TEST_KEEP=1     `stop` keeps the state dir (logs, data) instead of deleting it
#
# Needs: Debian/Ubuntu (apt) for openssh-server, sqlite3, curl, openssl, nodejs/npm;
# Go for the Go-based servers. Reaches only the Go module proxy, apt and the npm registry.
# Paths must not contain whitespace (sshd_config).
set -euo pipefail

# ---------------------------------------------------------------- settings --
# Pinned versions. The module proxy's "@latest" for toxiproxy/v2 is stale
# (v2.5.0), so every version here is explicit.
VERSITYGW_VERSION=v1.8.0
FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.37.0
TOXIPROXY_VERSION=v2.12.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

TOOLS_DIR=${REPLICATOR_TEST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/replicator-test-servers}
BIN=$TOOLS_DIR/bin
AZURITE_DIR=$TOOLS_DIR/azurite-$AZURITE_VERSION
AZURITE_BIN=$AZURITE_DIR/node_modules/.bin/azurite-blob

DEFAULT_STATE=/tmp/replicator-test-servers-$(id -u)
STATE=${REPLICATOR_TEST_STATE:-$DEFAULT_STATE}
MARKER=.replicator-test-servers          # marks a state dir as ours (stop only deletes such dirs)
START_TIMEOUT=${REPLICATOR_TEST_START_TIMEOUT:-120}   # Azurite alone took 22 s on a loaded 2-core machine
WANT_MINIO=${REPLICATOR_TEST_MINIO:-0}

# Test credentials: loopback only, not secrets.
BUCKET=replicator-test
S3_ACCESS_KEY=replicator
S3_SECRET_KEY=replicator-secret          # MinIO wants >= 8 characters
S3_REGION=us-east-1
AZ_ACCOUNT=devstoreaccount1              # Azurite's well-known development account
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

SERVERS=(s3 gcs azure sftp toxiproxy)
# Debian packages: sshd + sftp/ssh-keygen; sqlite3 for tests; curl + openssl for
# the readiness probes and for creating the bucket/container.
DEBS=(openssh-server openssh-client sqlite3 curl openssl)

# ----------------------------------------------------------------- helpers --
log() { printf '[test-servers] %s\n' "$*" >&2; }
die() { printf '[test-servers] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root (or sudo) for: $*"
	fi
}

servers() { # the servers this invocation manages
	printf '%s\n' "${SERVERS[@]}"
	if [ "$WANT_MINIO" = 1 ]; then echo minio; fi
}

describe() { # server -> what it is (for messages)
	case "$1" in
	s3) echo "S3 server (versitygw)" ;;
	gcs) echo "GCS server (fake-gcs-server)" ;;
	azure) echo "Azure server (Azurite)" ;;
	sftp) echo "SFTP server (sshd)" ;;
	toxiproxy) echo "toxiproxy server" ;;
	minio) echo "S3 server (MinIO)" ;;
	esac
}

check_path() { # name path: sshd_config and the env file cannot cope with whitespace
	case "$2" in *[[:space:]]*) die "$1 must not contain whitespace: '$2'" ;; esac
}

elapsed_since() { # start-nanoseconds -> "1.23s"
	local ns=$(( $(date +%s%N) - $1 ))
	printf '%d.%02ds' $((ns / 1000000000)) $(((ns / 10000000) % 100))
}

# --------------------------------------------------------------- install ----
deb_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

apt_ensure() { # package... : install missing Debian packages (apt-get update only if needed)
	local missing=() p
	for p in "$@"; do
		deb_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
	log "apt-get install ${missing[*]} ..."
	local t0 policy_added=0 rc=0
	t0=$(date +%s%N)
	# Installing openssh-server on a systemd host would enable and start the
	# system's sshd on port 22. We never use that service, so keep it from
	# starting for the duration of this install (the usual policy-rc.d hook).
	if [ -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
		as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
		policy_added=1
	fi
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
	# Package lists: refresh only when there are none, or when the install fails.
	if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
		as_root "${apt[@]}" update >&2 || rc=$?
	fi
	if [ "$rc" -eq 0 ] && ! as_root "${apt[@]}" install --no-install-recommends "${missing[@]}" >&2; then
		log "apt-get install failed; refreshing package lists and retrying"
		rc=0
		as_root "${apt[@]}" update >&2 || rc=$?
		[ "$rc" -ne 0 ] || as_root "${apt[@]}" install --no-install-recommends "${missing[@]}" >&2 || rc=$?
	fi
	if [ "$policy_added" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
	[ "$rc" -eq 0 ] || die "apt-get could not install: ${missing[*]}"
	log "apt packages installed in $(elapsed_since "$t0")"
}

go_tool_ok() { # binary module version: is BIN/binary built from module@version?
	[ -x "$BIN/$1" ] || return 1
	command -v go >/dev/null || return 1
	[ "$(go version -m "$BIN/$1" 2>/dev/null | awk '$1 == "mod" { print $2 " " $3; exit }')" = "$2 $3" ]
}

go_tool() { # binary module version package
	local name=$1 mod=$2 ver=$3 pkg=$4 tmp t0 logf=$TOOLS_DIR/logs/install-$1.log
	if go_tool_ok "$name" "$mod" "$ver"; then log "$name $ver already installed"; return 0; fi
	command -v go >/dev/null || die "go not found in PATH (needed to install $name)"
	log "go install $pkg@$ver (log: $logf) ..."
	t0=$(date +%s%N)
	tmp=$(mktemp -d "$TOOLS_DIR/.gobin.XXXXXX")
	# Build into a private GOBIN, then rename: a binary named e.g. "server" never
	# lands in BIN, and a concurrent reader never sees a half-written file.
	# GOFLAGS/GOWORK of the caller's project must not leak into this build.
	if ! (cd "$TOOLS_DIR" && env -u GOFLAGS GOWORK=off GOBIN="$tmp" go install "$pkg@$ver") >"$logf" 2>&1; then
		tail -n 20 "$logf" >&2 || true
		rm -rf "$tmp"
		die "installing $name $ver failed (log: $logf)"
	fi
	local built=("$tmp"/*)
	if [ ${#built[@]} -ne 1 ] || [ ! -x "${built[0]}" ]; then
		die "installing $name: unexpected build output in $tmp (log: $logf)"
	fi
	mv -f "${built[0]}" "$BIN/$name"
	rm -rf "$tmp"
	log "$name $ver installed in $(elapsed_since "$t0")"
}

azurite_ok() {
	[ -x "$AZURITE_BIN" ] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$AZURITE_DIR/node_modules/azurite/package.json" 2>/dev/null
}

install_azurite() {
	local logf=$TOOLS_DIR/logs/install-azurite.log t0
	if azurite_ok; then log "azurite $AZURITE_VERSION already installed"; return 0; fi
	command -v npm >/dev/null || die "npm not found (needed to install Azurite)"
	log "npm install azurite@$AZURITE_VERSION (log: $logf) ..."
	t0=$(date +%s%N)
	mkdir -p "$AZURITE_DIR"
	# Azurite 3.37 declares node >= 22 but runs on Node 20 (engines is advisory).
	if ! npm install --prefix "$AZURITE_DIR" --save-exact --no-audit --no-fund --loglevel=error \
		"azurite@$AZURITE_VERSION" >"$logf" 2>&1; then
		tail -n 20 "$logf" >&2 || true
		die "installing azurite $AZURITE_VERSION failed (log: $logf)"
	fi
	azurite_ok || die "azurite $AZURITE_VERSION: $AZURITE_BIN missing after npm install (log: $logf)"
	log "azurite $AZURITE_VERSION installed in $(elapsed_since "$t0")"
}

tools_ok() { # everything `start` needs is installed at the pinned versions
	local p
	for p in "${DEBS[@]}"; do deb_installed "$p" || return 1; done
	go_tool_ok versitygw github.com/versity/versitygw "$VERSITYGW_VERSION" &&
		go_tool_ok fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" &&
		go_tool_ok toxiproxy-server github.com/Shopify/toxiproxy/v2 "$TOXIPROXY_VERSION" &&
		azurite_ok || return 1
	if [ "$WANT_MINIO" = 1 ]; then go_tool_ok minio github.com/minio/minio "$MINIO_VERSION" || return 1; fi
}

cmd_install() {
	local t0; t0=$(date +%s%N)
	check_path REPLICATOR_TEST_TOOLS "$TOOLS_DIR"
	mkdir -p "$BIN" "$TOOLS_DIR/logs"
	# One install at a time per tools dir (parallel checkouts share it).
	exec 9>"$TOOLS_DIR/.install.lock"
	flock 9
	local pkgs=("${DEBS[@]}")
	command -v npm >/dev/null || pkgs+=(nodejs npm)
	apt_ensure "${pkgs[@]}"
	# npm mostly waits on the network and the Go builds on the CPU: overlap them.
	install_azurite &
	INSTALL_BG=$!
	go_tool versitygw github.com/versity/versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
	go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" github.com/fsouza/fake-gcs-server
	go_tool toxiproxy-server github.com/Shopify/toxiproxy/v2 "$TOXIPROXY_VERSION" github.com/Shopify/toxiproxy/v2/cmd/server
	if [ "$WANT_MINIO" = 1 ]; then
		go_tool minio github.com/minio/minio "$MINIO_VERSION" github.com/minio/minio
	fi
	local rc=0
	wait "$INSTALL_BG" || rc=$?
	INSTALL_BG=""
	[ "$rc" -eq 0 ] || die "installing azurite $AZURITE_VERSION failed (log: $TOOLS_DIR/logs/install-azurite.log)"
	exec 9>&-
	log "install done in $(elapsed_since "$t0") (tools in $TOOLS_DIR)"
}

# ------------------------------------------------------------- processes ----
proc_start_time() { # pid -> kernel start time (field 22 of /proc/PID/stat), empty if gone
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }            # drop "pid (comm) ": comm may contain spaces
	# shellcheck disable=SC2086 # split into fields 3.. (state ppid pgrp session ...)
	set -- $stat
	echo "${20:-}"               # field 22
}

proc_alive() { # pid: running and not a zombie
	local state
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

ours() { # server -> its pid on stdout; fails unless the pid file names a live process we started
	local f=$STATE/$1.pid pid="" st=""
	[ -f "$f" ] || return 1
	read -r pid st <"$f" || true
	[ -n "$pid" ] && [ -n "$st" ] && proc_alive "$pid" && [ "$(proc_start_time "$pid")" = "$st" ] || return 1
	echo "$pid"
}

spawn() { # server cmd... : start in a new session, record "pid starttime"
	local name=$1 pid
	shift
	# setsid: the server leaves our process group and terminal, so a Ctrl-C
	# meant for the tests does not reach it and `stop` decides when it ends.
	# (A background job of a non-interactive shell is never a process-group
	# leader, so setsid does not fork: $! is the server's own pid.)
	setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid $(proc_start_time "$pid")" >"$STATE/$name.pid"
}

stop_servers() { # stop the servers this state dir started; never touch anything else
	local n pid i d stat fld pids=() names=() alive
	for n in "${SERVERS[@]}" minio; do
		if pid=$(ours "$n"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid"); names+=("$n")
		else
			rm -f "$STATE/$n.pid"
		fi
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	for i in $(seq 1 100); do             # up to 10 s for all of them together
		alive=0
		for pid in "${pids[@]}"; do if proc_alive "$pid"; then alive=1; fi; done
		[ "$alive" = 1 ] || break
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		pid=${pids[$i]} n=${names[$i]}
		if proc_alive "$pid"; then
			log "$(describe "$n") (pid $pid) ignored SIGTERM for 10s; sending SIGKILL (log: $STATE/$n.log)"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	# What is left in a server's own session (setsid made its sid = its pid)
	# was started by that server: e.g. sshd's per-connection processes.
	for d in /proc/[0-9]*; do
		{ read -r stat <"$d/stat"; } 2>/dev/null || continue   # builtins only: this loop sees every process
		stat=${stat##*) }
		read -r -a fld <<<"$stat"                         # fld[3] = session id (field 6)
		for pid in "${pids[@]}"; do
			if [ "${fld[3]:-}" = "$pid" ] && [ "${d#/proc/}" != "$$" ]; then kill -TERM "${d#/proc/}" 2>/dev/null || true; fi
		done
	done
	for i in "${!pids[@]}"; do
		rm -f "$STATE/${names[$i]}.pid"
		log "stopped $(describe "${names[$i]}") (pid ${pids[$i]})"
	done
}

# ------------------------------------------------------------------ ports ---
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

declare -A PORT=()
pick_ports() {
	local i name p used=" "
	for name in $(servers); do
		if [ -n "${REPLICATOR_TEST_PORT_BASE:-}" ]; then
			case "$name" in s3) i=0 ;; gcs) i=1 ;; azure) i=2 ;; sftp) i=3 ;; toxiproxy) i=4 ;; minio) i=5 ;; esac
			p=$((REPLICATOR_TEST_PORT_BASE + i))
			if port_in_use "$p"; then
				die "port $p for the $(describe "$name") is already in use (REPLICATOR_TEST_PORT_BASE=$REPLICATOR_TEST_PORT_BASE)"
			fi
		else
			# Random, below the kernel's ephemeral range (32768+) so that outgoing
			# connections do not grab it before the server binds it.
			p=""
			for i in $(seq 1 100); do
				p=$((20000 + RANDOM % 12000))
				if [[ $used != *" $p "* ]] && ! port_in_use "$p"; then break; fi
				p=""
			done
			[ -n "$p" ] || die "no free port found for the $(describe "$name")"
		fi
		PORT[$name]=$p
		used+="$p "
	done
}

# -------------------------------------------------------------- probes ------
http_code() { # url [curl args...] -> HTTP status, "000" when nothing answered
	local url=$1; shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url" 2>/dev/null || true
}

ssh_banner() { # port
	local line=""
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	IFS= read -r -t 3 line <&3 || true
	exec 3<&- 3>&-
	[[ $line == SSH-2.0-* ]]
}

answering() { # server: is it accepting requests?
	local p=${PORT[$1]} c
	case "$1" in
	s3) c=$(http_code "http://127.0.0.1:$p/"); [ "$c" != 000 ] ;;  # unsigned: 403 is fine
	minio) [ "$(http_code "http://127.0.0.1:$p/minio/health/ready")" = 200 ] ;;
	gcs) [ "$(http_code "http://127.0.0.1:$p/storage/v1/b")" = 200 ] ;;
	azure) c=$(http_code "http://127.0.0.1:$p/$AZ_ACCOUNT?comp=list"); [ "$c" != 000 ] ;;
	sftp) ssh_banner "$p" ;;
	toxiproxy) [ "$(http_code "http://127.0.0.1:$p/version")" = 200 ] ;;
	esac
}

fail_server() { # server message
	local logf=$STATE/$1.log
	if [ -s "$logf" ]; then
		log "last lines of $logf:"
		tail -n 20 "$logf" | sed 's/^/    /' >&2
	fi
	die "$(describe "$1"): $2 (log: $logf)"
}

# ------------------------------------------------------ per-server setup ----
request() { # outfile curl-args... -> HTTP status ("000" when nothing answered), body in outfile
	local out=$1; shift
	curl -s -o "$out" -w '%{http_code}' --max-time 10 "$@" 2>/dev/null || true
}

s3_make_bucket() { # server
	local p=${PORT[$1]} out=$STATE/$1.setup c
	# curl signs the request itself (SigV4); an unsigned request would get 403.
	c=$(request "$out" -X PUT \
		--aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"http://127.0.0.1:$p/$BUCKET")
	[ "$c" = 200 ] || fail_server "$1" "creating bucket '$BUCKET' got HTTP $c: $(head -c 400 "$out")"
	# And a signed list proves the credentials work end to end.
	c=$(request "$out" \
		--aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"http://127.0.0.1:$p/$BUCKET?list-type=2")
	[ "$c" = 200 ] || fail_server "$1" "listing bucket '$BUCKET' got HTTP $c: $(head -c 400 "$out")"
	rm -f "$out"
}

gcs_make_bucket() {
	local p=${PORT[gcs]} out=$STATE/gcs.setup c
	c=$(request "$out" -X POST -H 'Content-Type: application/json' \
		--data "{\"name\":\"$BUCKET\"}" "http://127.0.0.1:$p/storage/v1/b?project=replicator-test")
	[ "$c" = 200 ] || fail_server gcs "creating bucket '$BUCKET' got HTTP $c: $(head -c 400 "$out")"
	rm -f "$out"
}

azure_make_container() {
	# "Create Container" of the Blob REST API, signed with SharedKey. The URL is
	# path-style (/account/container), so the canonicalized resource names the
	# account twice.
	local p=${PORT[azure]} out=$STATE/azure.setup c date ver=2021-12-02 sts keyhex sig nl=$'\n'
	date=$(LC_ALL=C TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')
	sts="PUT${nl}${nl}${nl}${nl}${nl}${nl}${nl}${nl}${nl}${nl}${nl}${nl}x-ms-date:$date${nl}x-ms-version:$ver${nl}/$AZ_ACCOUNT/$AZ_ACCOUNT/$BUCKET${nl}restype:container"
	keyhex=$(printf '%s' "$AZ_KEY" | base64 -d | od -An -v -tx1 | tr -d ' \n')
	sig=$(printf '%s' "$sts" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$keyhex" -binary | base64 -w0)
	c=$(request "$out" -X PUT -H 'Content-Length: 0' \
		-H "x-ms-date: $date" -H "x-ms-version: $ver" -H "Authorization: SharedKey $AZ_ACCOUNT:$sig" \
		"http://127.0.0.1:$p/$AZ_ACCOUNT/$BUCKET?restype=container")
	[ "$c" = 201 ] || fail_server azure "creating container '$BUCKET' got HTTP $c: $(head -c 400 "$out")"
	rm -f "$out"
}

sftp_opts() { # common ssh/sftp client options for our sshd
	local d=$STATE/sftp
	printf '%s\n' -F /dev/null -i "$d/client_ed25519" -o BatchMode=yes -o IdentitiesOnly=yes \
		-o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$d/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o ConnectTimeout=5 -o LogLevel=ERROR
}

sftp_check() {
	local p=${PORT[sftp]} out=$STATE/sftp.setup opts
	mapfile -t opts < <(sftp_opts)
	# A real login with the generated key, checking the host key, into internal-sftp.
	if ! printf 'pwd\nls\n' | sftp -q "${opts[@]}" -P "$p" -b - "$(id -un)@127.0.0.1" >"$out" 2>&1; then
		fail_server sftp "sftp login as $(id -un) with $STATE/sftp/client_ed25519 failed: $(head -c 400 "$out")
    (a locked account — '!' in /etc/shadow — cannot log in with UsePAM no)"
	fi
	grep -q "$STATE/sftp/root" "$out" || fail_server sftp "sftp session did not start in $STATE/sftp/root: $(head -c 400 "$out")"
	rm -f "$out"
}

write_sshd_config() {
	local d=$STATE/sftp p=${PORT[sftp]}
	mkdir -p "$d/root"
	ssh-keygen -q -t ed25519 -N '' -C replicator-test-host -f "$d/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -C replicator-test-client -f "$d/client_ed25519"
	cp "$d/client_ed25519.pub" "$d/authorized_keys"
	chmod 600 "$d/host_ed25519" "$d/client_ed25519" "$d/authorized_keys"
	echo "[127.0.0.1]:$p $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >"$d/known_hosts"
	cat >"$d/sshd_config" <<EOF
# replicator test sshd — generated by scripts/test-servers.sh; not the system's sshd.
Port $p
ListenAddress 127.0.0.1
HostKey $d/host_ed25519
PidFile none
AuthorizedKeysFile $d/authorized_keys
AllowUsers $(id -un)
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LogLevel VERBOSE
Subsystem sftp internal-sftp -d $d/root
# sftp only: no shell or exec for this key
ForceCommand internal-sftp -d $d/root
EOF
	if [ "$(id -u)" -eq 0 ]; then
		# sshd running as root needs its privilege-separation directory.
		mkdir -p /run/sshd && chmod 0755 /run/sshd
		id sshd >/dev/null 2>&1 || die "SFTP server (sshd): privilege-separation user 'sshd' missing (reinstall openssh-server)"
	fi
	local out
	out=$(/usr/sbin/sshd -t -f "$d/sshd_config" 2>&1) || die "SFTP server (sshd): config test failed for $d/sshd_config: $out"
}

# ------------------------------------------------------------------ start ---
state_busy() { # any server of this state dir still running?
	local n
	for n in "${SERVERS[@]}" minio; do
		if ours "$n" >/dev/null; then return 0; fi
	done
	return 1
}

prepare_state() {
	check_path REPLICATOR_TEST_STATE "$STATE"
	if [ -d "$STATE" ]; then
		if [ -e "$STATE/$MARKER" ]; then
			if state_busy; then
				die "servers already running for $STATE (env: $STATE/env); run '$0 stop' first"
			fi
			# Leftovers of an earlier run that was not stopped: start clean.
			rm -rf "$STATE"
		elif [ -n "$(ls -A "$STATE")" ]; then
			die "REPLICATOR_TEST_STATE=$STATE exists, is not empty and was not made by this script"
		fi
	fi
	mkdir -p "$STATE"
	STATE=$(cd "$STATE" && pwd)
	touch "$STATE/$MARKER"
	OWN_STATE=1      # from here on, this invocation owns what is in STATE
}

launch() { # server
	local p=${PORT[$1]} d=$STATE
	case "$1" in
	s3)
		mkdir -p "$d/s3"
		spawn s3 env ROOT_ACCESS_KEY="$S3_ACCESS_KEY" ROOT_SECRET_KEY="$S3_SECRET_KEY" \
			"$BIN/versitygw" --port "127.0.0.1:$p" --region "$S3_REGION" --quiet posix "$d/s3" ;;
	gcs)
		# The memory backend: the filesystem one keeps directories of deleted
		# objects (so "a/b" cannot be put after "a/b/c" was deleted, unlike
		# real GCS) and fsyncs every object under one lock.
		spawn gcs "$BIN/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$p" \
			-backend memory \
			-public-host "127.0.0.1:$p" -external-url "http://127.0.0.1:$p" -log-level warn ;;
	azure)
		mkdir -p "$d/azure"
		# --skipApiVersionCheck: azblob sends an x-ms-version newer than Azurite 3.37 knows.
		spawn azure "$AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$p" --location "$d/azure" \
			--skipApiVersionCheck --disableTelemetry --silent ;;
	sftp)
		write_sshd_config
		# -D: stay in the foreground (the pid is the listener); -e: log to stderr.
		spawn sftp /usr/sbin/sshd -D -e -f "$d/sftp/sshd_config" ;;
	toxiproxy)
		spawn toxiproxy "$BIN/toxiproxy-server" -host 127.0.0.1 -port "$p" ;;
	minio)
		mkdir -p "$d/minio"
		spawn minio env MINIO_ROOT_USER="$S3_ACCESS_KEY" MINIO_ROOT_PASSWORD="$S3_SECRET_KEY" \
			MINIO_BROWSER=off MINIO_UPDATE=off CI=true \
			"$BIN/minio" server "$d/minio" --address "127.0.0.1:$p" --quiet ;;
	esac
}

setup_server() { # server: create what the tests need, with a real client request
	case "$1" in
	s3 | minio) s3_make_bucket "$1" ;;
	gcs) gcs_make_bucket ;;
	azure) azure_make_container ;;
	sftp) sftp_check ;;
	toxiproxy) : ;;
	esac
}

write_env() {
	local f=$STATE/env tmp=$STATE/env.tmp d=$STATE/sftp
	q() { printf "export %s='%s'\n" "$1" "$2"; }   # no value here contains a single quote
	{
		echo "# replicator test servers, written by scripts/test-servers.sh start on $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
		echo "# env file: $f   (load with: . $f)"
		q REPLICATOR_TEST_STATE "$STATE"
		echo "# S3: versitygw, path-style addressing, SigV4"
		q TEST_S3_ENDPOINT "http://127.0.0.1:${PORT[s3]}"
		q TEST_S3_BUCKET "$BUCKET"
		q TEST_S3_ACCESS_KEY "$S3_ACCESS_KEY"
		q TEST_S3_SECRET_KEY "$S3_SECRET_KEY"
		q TEST_S3_REGION "$S3_REGION"
		echo "# GCS: fake-gcs-server JSON API endpoint (option.WithEndpoint), no auth"
		q TEST_GCS_ENDPOINT "http://127.0.0.1:${PORT[gcs]}/storage/v1/"
		q TEST_GCS_BUCKET "$BUCKET"
		echo "# Azure: Azurite blob service, path-style account URL, SharedKey"
		q TEST_AZURE_ENDPOINT "http://127.0.0.1:${PORT[azure]}/$AZ_ACCOUNT"
		q TEST_AZURE_ACCOUNT "$AZ_ACCOUNT"
		q TEST_AZURE_KEY "$AZ_KEY"
		q TEST_AZURE_CONTAINER "$BUCKET"
		echo "# SFTP: OpenSSH sshd + internal-sftp (starts in TEST_SFTP_ROOT; no chroot)"
		q TEST_SFTP_HOST 127.0.0.1
		q TEST_SFTP_PORT "${PORT[sftp]}"
		q TEST_SFTP_USER "$(id -un)"
		q TEST_SFTP_KEY_PATH "$d/client_ed25519"
		q TEST_SFTP_KNOWN_HOSTS "$d/known_hosts"
		q TEST_SFTP_ROOT "$d/root"
		echo "# toxiproxy API (host:port)"
		q TEST_TOXIPROXY_ADDR "127.0.0.1:${PORT[toxiproxy]}"
		if [ "$WANT_MINIO" = 1 ]; then
			echo "# MinIO (optional second S3 server), same credentials and bucket name"
			q TEST_MINIO_ENDPOINT "http://127.0.0.1:${PORT[minio]}"
			q TEST_MINIO_BUCKET "$BUCKET"
			q TEST_MINIO_ACCESS_KEY "$S3_ACCESS_KEY"
			q TEST_MINIO_SECRET_KEY "$S3_SECRET_KEY"
		fi
	} >"$tmp"
	mv -f "$tmp" "$f"
}

cmd_start() {
	local t0 name pending=() still deadline now
	t0=$(date +%s%N)
	if ! tools_ok; then
		log "some test servers are missing or at other versions; installing (first time takes a few minutes)"
		cmd_install
	fi
	pick_ports
	prepare_state
	# From here on, a failure (or Ctrl-C) stops what was started: see on_exit.
	STARTING=1
	for name in $(servers); do
		launch "$name"
		pending+=("$name")
	done
	deadline=$(( $(date +%s) + START_TIMEOUT ))
	while [ ${#pending[@]} -gt 0 ]; do
		still=()
		for name in "${pending[@]}"; do
			if ! ours "$name" >/dev/null; then
				fail_server "$name" "exited during startup"
			elif answering "$name"; then
				# Answering, but is it ours (and not something that took the port)?
				ours "$name" >/dev/null || fail_server "$name" "exited during startup"
				setup_server "$name"
				log "$(describe "$name") ready on 127.0.0.1:${PORT[$name]} (pid $(ours "$name"), $(elapsed_since "$t0"))"
			else
				still+=("$name")
			fi
		done
		pending=("${still[@]+"${still[@]}"}")
		[ ${#pending[@]} -gt 0 ] || break
		now=$(date +%s)
		if [ "$now" -ge "$deadline" ]; then
			fail_server "${pending[0]}" "not ready on 127.0.0.1:${PORT[${pending[0]}]} after ${START_TIMEOUT}s (REPLICATOR_TEST_START_TIMEOUT)"
		fi
		sleep 0.1
	done
	write_env
	STARTING=0
	log "all servers ready in $(elapsed_since "$t0"); env file: $STATE/env (load with: . $STATE/env)"
	echo "$STATE/env"
}

# ------------------------------------------------------------- stop & co ----
cmd_stop() {
	local n
	if [ ! -d "$STATE" ]; then log "nothing to stop ($STATE does not exist)"; return 0; fi
	[ -e "$STATE/$MARKER" ] || die "$STATE was not created by this script; not touching it"
	stop_servers
	if [ "${REPLICATOR_TEST_KEEP:-0}" = 1 ]; then
		log "kept $STATE (REPLICATOR_TEST_KEEP=1)"
	else
		rm -rf "$STATE"
		log "removed $STATE"
	fi
}

cmd_status() {
	local n pid rc=1
	for n in "${SERVERS[@]}" minio; do
		if pid=$(ours "$n"); then
			echo "$n: running (pid $pid, log $STATE/$n.log)"; rc=0
		elif [ "$n" != minio ] || [ "$WANT_MINIO" = 1 ]; then
			echo "$n: not running"
		fi
	done
	if [ -f "$STATE/env" ]; then echo "env: $STATE/env"; fi
	return $rc
}

cmd_env() {
	[ -f "$STATE/env" ] || die "no env file at $STATE/env: servers not started (run '$0 start')"
	if [ "${1:-}" = --path ]; then echo "$STATE/env"; else cat "$STATE/env"; fi
}

# -------------------------------------------------------------------- run ---
cmd_run() {
	[ "${1:-}" != -- ] || shift
	[ $# -gt 0 ] || die "usage: $0 run -- COMMAND [ARGS...]"
	if [ -z "${REPLICATOR_TEST_STATE:-}" ]; then
		# A private state dir: never collides with `start` or another run.
		STATE=$(mktemp -d "${TMPDIR:-/tmp}/replicator-test-run.XXXXXX")
		touch "$STATE/$MARKER"
		RUN_TMP=1
	fi
	RUNNING=1
	cmd_start >/dev/null
	local rc=0
	# The command runs in the foreground (it keeps the terminal and stdin).
	# Ctrl-C reaches it and us; when it has ended, on_exit stops the servers.
	# A SIGTERM sent to this script alone waits for the command to end (bash
	# defers traps while a foreground child runs): signal the process group.
	# shellcheck disable=SC1091
	(. "$STATE/env" && exec "$@") || rc=$?
	exit "$rc"
}

# Exit handling for start and run. STARTING: a start in progress failed or was
# interrupted -> stop what it started, keep the logs its message names.
# RUNNING: `run` ends -> copy the logs aside if it failed, stop everything and
# remove the state dir.
STARTING=0
RUNNING=0
OWN_STATE=0
RUN_TMP=0
INSTALL_BG=""
on_exit() {
	local rc=$? keep
	trap - EXIT INT TERM HUP
	set +e
	# A failed install still lets the background npm install finish (its
	# children would outlive a kill of the subshell).
	if [ -n "$INSTALL_BG" ]; then wait "$INSTALL_BG"; fi
	if [ "$STARTING" = 1 ]; then
		# The error message names log files in STATE: keep them.
		stop_servers
		log "start failed; servers stopped; logs and data kept in $STATE (REPLICATOR_TEST_STATE=$STATE $0 stop removes them)"
	elif [ "$RUNNING" = 1 ] && [ "$OWN_STATE" = 1 ]; then
		if [ "$rc" -ne 0 ] && compgen -G "$STATE/*.log" >/dev/null; then
			keep=$(mktemp -d "${TMPDIR:-/tmp}/replicator-test-logs.XXXXXX")
			cp "$STATE"/*.log "$keep"/
			log "exit status $rc; server logs kept in $keep"
		fi
		cmd_stop
	elif [ "$RUN_TMP" = 1 ]; then
		rm -rf "$STATE"        # `run` made this dir but never got to start anything
	fi
	exit "$rc"
}

# ------------------------------------------------------------------- main ---
main() {
	local cmd=${1:-help}
	case "$START_TIMEOUT" in '' | *[!0-9]*) die "REPLICATOR_TEST_START_TIMEOUT must be a number of seconds, not '$START_TIMEOUT'" ;; esac
	[ $# -eq 0 ] || shift
	trap on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	case "$cmd" in
	install) cmd_install ;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	env) cmd_env "$@" ;;
	run) cmd_run "$@" ;;
	help | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
}

# Run only when executed, so that tests can source the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
