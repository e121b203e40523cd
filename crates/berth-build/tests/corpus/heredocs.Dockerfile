# syntax=docker/dockerfile:1
FROM alpine:3.19
RUN <<EOF
apk add --no-cache curl
echo done
EOF
RUN <<-SCRIPT cat > /etc/motd
	hello $USER
	SCRIPT
COPY <<CONF <<'RAW' /etc/app/
port=$PORT
CONF
literal $PORT
RAW
RUN python3 <<PY
print("hi")
PY
