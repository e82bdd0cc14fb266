#!/bin/sh
# A first session with the management API, against a local `mcagent dev`:
# create a user, add a WhatsApp channel, link an agent, top up credits, let a customer write, list messages.
#
#   mcagent dev                                   # in another terminal
#   sh documentation/examples/curl/quickstart.sh
#
# Needs curl, python3 (to read the JSON answers) and openssl (to sign the simulated webhook).
# Safe to run again: every run creates a new user and channel.
set -eu

BASE=${BASE:-http://127.0.0.1:8000}
ADMIN_KEY=${ADMIN_KEY:-dev-admin-key}                # ADMIN_API_KEY; this is the `mcagent dev` default
WEBHOOK_SECRET=${WEBHOOK_SECRET:-dev-webhook-secret} # WEBHOOK_SECRET; the `mcagent dev` default
WEBHOOK_PATH=${WEBHOOK_PATH:-/webhook/meta}
RUN=$(date +%s)

# json FIELD... — print a field of the JSON on stdin, e.g. `json user user_id`.
json() {
  python3 -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1:]:
    value = value[key]
print(value)' "$@"
}

# show — pretty-print the JSON on stdin.
show() {
  python3 -m json.tool --no-ensure-ascii
}

echo "== 1. The operator creates a user (admin key). The API key is shown only now."
created=$(curl -sS --fail-with-body -X POST "$BASE/users" \
  -H "x-api-key: $ADMIN_KEY" -H 'Content-Type: application/json' \
  -d "{\"email\": \"quickstart-$RUN@shop.example\", \"company_name\": \"Quickstart Shop\"}")
echo "$created" | show
USER_ID=$(echo "$created" | json user user_id)
API_KEY=$(echo "$created" | json api_key)

echo "== 2. The user adds its WhatsApp number (the access token comes back masked)."
PHONE_NUMBER_ID="1$RUN"
curl -sS --fail-with-body -X POST "$BASE/users/$USER_ID/phone_numbers" \
  -H "x-api-key: $API_KEY" -H 'Content-Type: application/json' \
  -d "{\"type\": \"whatsapp\", \"phone_number_id\": \"$PHONE_NUMBER_ID\", \"external_number\": \"+1 555 0100\",
       \"access_token\": \"EAAG-quickstart-not-a-real-token\", \"display_name\": \"Quickstart Shop\"}" | show

echo "== 3. The user links an OpenAI dashboard prompt to the number."
curl -sS --fail-with-body -X POST "$BASE/users/$USER_ID/agents" \
  -H "x-api-key: $API_KEY" -H 'Content-Type: application/json' \
  -d "{\"name\": \"Sales\", \"prompt_id\": \"pmpt_quickstart\", \"phone_number_id\": \"$PHONE_NUMBER_ID\"}" | show

echo "== 4. The operator tops up credits; retrying with the same Idempotency-Key would not credit twice."
curl -sS --fail-with-body -X POST "$BASE/users/$USER_ID/credits" \
  -H "x-api-key: $ADMIN_KEY" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: quickstart-$RUN" \
  -d '{"amount": 100, "reason": "quickstart"}' | show
curl -sS --fail-with-body "$BASE/users/$USER_ID/credits" -H "x-api-key: $API_KEY" | show

echo "== 5. A customer writes: a WhatsApp webhook delivery, signed as Meta signs it."
delivery=$(cat <<JSON
{"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": [{"field": "messages", "value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550100", "phone_number_id": "$PHONE_NUMBER_ID"},
  "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15550000001"}],
  "messages": [{"from": "15550000001", "id": "wamid.quickstart$RUN", "timestamp": "$RUN",
                "type": "text", "text": {"body": "Hi, do you ship to Lisbon?"}}]}}]}]}
JSON
)
signature=$(printf '%s' "$delivery" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" | sed 's/^.* //')
curl -sS --fail-with-body -X POST "$BASE$WEBHOOK_PATH" \
  -H 'Content-Type: application/json' -H "X-Hub-Signature-256: sha256=$signature" \
  --data-binary "$delivery"
echo
sleep 2 # the worker answers in the background

echo "== 6. The user lists its messages, newest first: the customer's and the agent's reply."
echo "   (without OPENAI_API_KEY, \`mcagent dev\` answers with its labelled offline responder)"
curl -sS --fail-with-body -G "$BASE/users/$USER_ID/messages" -H "x-api-key: $API_KEY" -d limit=10 | show

echo "== Errors share one shape; here another user's key on this user's path answers 404."
other=$(curl -sS -X POST "$BASE/users" -H "x-api-key: $ADMIN_KEY" -H 'Content-Type: application/json' \
  -d "{\"email\": \"other-$RUN@shop.example\"}" | json api_key)
curl -sS "$BASE/users/$USER_ID/messages" -H "x-api-key: $other" -H "x-correlation-id: quickstart-$RUN" | show
