# The JWT-authenticated `data` endpoint that the listener rows of benches/listener.sh and
# benches/listener_ab.sh serve (one definition, so the A/B measures what the bench measures).
# Sourced: sets key, secret, h1, h2; `bench_toml FILE` writes the endpoint's configuration,
# `durable_toml FILE [LINES]` the durable rows' endpoint (a `data` endpoint with two `store`
# steps, used by benches/listener.sh and benches/durable_profile.sh), LINES put before it.
# shellcheck shell=bash
key="bench-issuer"
secret="bench-secret-0123456789abcdef0123456789abcdef"
h1=0123456789abcdef0123456789abcdef
h2=fedcba9876543210fedcba9876543210
bench_toml() {
  cat >"$1" <<TOML
[[endpoint]]
name = "bench"
first_hash = "$h1"
second_hash = "$h2"
return_type = "data"
return_data = '''{"status": "received", "user": {{ __data.__headers.__jwt_data[0].user|json_encode|raw }}, "ref": {{ __data.ref|default('')|json_encode|raw }}, "method": "{{ __data.__method }}"}'''
add_authentication = true
endpoint_key = "$key"
endpoint_secret = "$secret"
TOML
}
durable_toml() {
  cat >"$1" <<TOML
${2:-}
[[endpoint]]
name = "durable"
first_hash = "$h1"
second_hash = "$h2"
return_type = "data"
return_data = '''{"status": "received", "ref": {{ __data.ref|default('')|json_encode|raw }}}'''

[[endpoint.step]]
id = "keep"
type = "store"
name = "ref"
value = "{{ __data.ref }}"

[[endpoint.step]]
id = "seen"
parent = "keep"
type = "store"
name = "seen"
expression = "__data.ref ~ '-seen'"
TOML
}
