#!/bin/sh
# Hashes the passwords given in the environment into the password file, then runs Mosquitto.
set -eu
passwd=/mosquitto/config/passwd
: > "$passwd"
mosquitto_passwd -b "$passwd" gateway "$GATEWAY_MQTT_PASSWORD"
mosquitto_passwd -b "$passwd" alerts "$ALERTS_MQTT_PASSWORD"
mosquitto_passwd -b "$passwd" exporter "$EXPORTER_MQTT_PASSWORD"
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
chmod 0600 "$passwd"
exec mosquitto -c /mosquitto/config/mosquitto.conf
