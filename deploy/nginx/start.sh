#!/bin/sh
# Starts nginx in front of the replicas and keeps its list of them current.
#
# Replicas come and go (scaling, restarts, a replaced container gets a new address), and
# Docker's DNS then answers the service name with another set of addresses. nginx resolves an
# upstream name once, at start, unless the server has the `resolve` parameter, which open-source
# nginx has since 1.27.3: the official image (1.28) has it, Debian bookworm's package (1.22.1)
# does not and refuses the configuration. So `resolve` where nginx accepts it; elsewhere this
# script looks the name up every 2 s and reloads nginx when the addresses change (a reload
# keeps requests in flight: the old workers finish them).
set -eu
upstream=${CHAT_UPSTREAM:-chat:8000}
host=${upstream%:*}
conf=/etc/nginx/chat/nginx.conf
servers=/etc/nginx/chat-upstream.conf

addresses() { getent ahostsv4 "$host" | awk '{ print $1 }' | sort -u | tr '\n' ' '; }

echo "server $upstream resolve max_fails=1 fail_timeout=5s;" >"$servers"
if nginx -t -q -c "$conf" 2>/dev/null; then
  echo "start.sh: $(nginx -v 2>&1): replicas re-resolved by nginx (resolve)" >&2
else
  echo "server $upstream max_fails=1 fail_timeout=5s;" >"$servers"
  echo "start.sh: $(nginx -v 2>&1) has no upstream resolve: reloading on address changes" >&2
  (
    known=$(addresses)
    while sleep 2; do
      now=$(addresses)
      if [ -n "$now" ] && [ "$now" != "$known" ] && nginx -t -q -c "$conf"; then
        echo "start.sh: replicas now $now, reloading" >&2
        nginx -s reload -c "$conf" && known=$now
      fi
    done
  ) &
fi
exec nginx -c "$conf" -g 'daemon off;'
