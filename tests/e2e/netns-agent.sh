#!/bin/sh
# Remote-launch agent for Open MPI's rsh launcher (--mca plm_rsh_agent) that
# "logs in" to a network namespace on this machine instead of another host.
# Used by tests/e2e/test_twohost.sh; needs root (ip netns exec).
#
# mpirun calls it like ssh (--mca plm_rsh_agent "sh /path/netns-agent.sh"):
#   netns-agent.sh [OPTIONS...] HOST COMMAND...
# where COMMAND is one shell command line split into words (ssh joins them
# with spaces and hands them to the remote shell; so do we).
#
# Environment (inherited from mpirun, set by the test):
#   NETNS_AGENT_HOSTS  space-separated HOST=NAMESPACE=HOSTNAME entries; HOST is
#                      what mpirun passes (the namespace's address), the
#                      command runs in NAMESPACE under its own UTS namespace
#                      with the host name HOSTNAME (so each "host" has its own
#                      name, as on a real cluster)
#   NETNS_AGENT_LOG    optional file: one line "HOST NAMESPACE HOSTNAME" per launch
#
# An unknown HOST is an error: never run anything outside the namespaces the
# test created.
set -eu

# ssh-style options before the host name (Open MPI adds none for a non-ssh
# agent, but accept them the way ssh would).
while [ $# -gt 0 ]; do
    case $1 in
    -[1246AaCfGgKkMNnqsTtVXxYy]) shift ;;
    -?) shift 2 ;;
    *) break ;;
    esac
done
if [ $# -lt 2 ]; then
    echo "netns-agent: usage: netns-agent.sh HOST COMMAND..." >&2
    exit 255
fi
host=$1
shift

ns='' hn=''
for e in ${NETNS_AGENT_HOSTS:-}; do
    case $e in
    "$host"=*=*)
        rest=${e#*=}
        ns=${rest%%=*}
        hn=${rest#*=}
        ;;
    esac
done
if [ -z "$ns" ] || [ -z "$hn" ]; then
    echo "netns-agent: unknown host '$host' (NETNS_AGENT_HOSTS='${NETNS_AGENT_HOSTS:-}')" >&2
    exit 255
fi
if [ -n "${NETNS_AGENT_LOG:-}" ]; then
    echo "$host $ns $hn" >>"$NETNS_AGENT_LOG"
fi

# Like ssh: the words form one command line for a shell, run in the namespace
# under its own host name.
# shellcheck disable=SC2016 # $1, $* expand in the inner shell
exec ip netns exec "$ns" unshare --uts -- \
    sh -c 'hostname "$1" && shift && exec sh -c "$*"' netns-agent "$hn" "$@"
