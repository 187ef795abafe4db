# Sourced by the benchmarks: measuring helpers shared by bench/run, bench/proxy, bench/scale and
# bench/scrypt-flood.

# Installs the Debian packages named (each one also the command it provides) that are missing; the
# package lists are refreshed first, as a fresh machine has none.
need_tools() {
    local missing=() tool sudo=""
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    ((${#missing[@]})) || return 0
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
hz=$(getconf CLK_TCK)
# Resident memory, split into anonymous (heap, stacks) and file-backed (mapped code of the
# binary and the Swift/Foundation libraries, shared with every other process using them).
rss() { awk '/VmRSS/ {t=$2} /RssAnon/ {a=$2} /RssFile/ {f=$2} END {printf "%.0f MiB (%.0f anon + %.0f file)", t/1024, a/1024, f/1024}' "/proc/$1/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# The highest RSS the process has had (VmHWM).
peak() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$1/status"; }
# CPU ticks (utime+stime) of the processes.
ticks() { local total=0; for pid in "$@"; do total=$((total + $(awk '{print $14+$15}' "/proc/$pid/stat"))); done; echo $total; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The lowest and the highest of field $1 over the rounds in file $2 ("low–high").
spread() { cut -d' ' -f"$1" "$2" | sort -n | awk 'NR==1 {low=$1} {high=$1} END {print low "–" high}'; }
# wrk latency figures in microseconds ("1.23ms" -> 1230).
micros() { awk '{v=$1; if (v ~ /us$/) {sub("us","",v); print v} else if (v ~ /ms$/) {sub("ms","",v); print v*1000} else {sub("s","",v); print v*1000000}}'; }
# Seconds since an instant taken with `date +%s.%N`.
since() { echo "$(date +%s.%N) - $1" | bc; }
# Waits (at most $2 tries of 20 ms) until the URL $1 answers 200.
wait_ready() { for _ in $(seq "$2"); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.02; done; return 1; }
machine() {
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(swift --version 2>/dev/null | head -n1); $(nginx -v 2>&1); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)."
}
# One CA and one serving certificate for 127.0.0.1 in directory $1 (ca.pem, server.pem, server.key).
certificates() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
        -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 -keyout "$1/server.key" -out "$1/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$1/ext"
    openssl x509 -req -in "$1/server.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial -days 2 -extfile "$1/ext" \
        -out "$1/server.pem" 2>/dev/null
}
# A wrk script ($2) sending GET $3 with a bearer token rotating through up to 1,000 tokens of file $1.
bearer_lua() {
    {
        echo 'local tokens = {}'
        head -n 1000 "$1" | while read -r token; do printf 'table.insert(tokens, "%s")\n' "$token"; done
        cat <<LUA
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "$3", {["Authorization"] = "Bearer " .. tokens[i]})
end
LUA
    } > "$2"
}
# wrk_measure THREADS CONNECTIONS SECONDS SCRIPT URL PIDS... -> "req/s p50us p99us cpu-us-per-request"
# (CPU of PIDS over the run); any non-2xx answer fails the run.
wrk_measure() {
    local threads=$1 connections=$2 duration=$3 script=$4 url=$5; shift 5
    local before after out requests non2xx
    before=$(ticks "$@")
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$script" "$url")
    after=$(ticks "$@")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    [ -z "$non2xx" ] || { echo "non-2xx answers during the run: $non2xx" >&2; exit 1; }
    echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1=="50%" {print $2}' | micros) $(echo "$out" | awk '$1=="99%" {print $2}' | micros) $(echo "scale=2; ($after - $before) * 1000000 / $hz / $requests" | bc)"
}
