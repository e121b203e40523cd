# cost of node:20 is paid once and cached forever, so no need to use alpine
FROM node:20 AS node-builder
WORKDIR /builder
COPY package*.json .
RUN npm ci
COPY . .

FROM alpine:3.19
RUN apk add --update nodejs
RUN addgroup -S node && adduser -S node -G node
USER node
WORKDIR /home/node/code
COPY --from=node-builder --chown=node:node /builder .
CMD ["node", "index.js"]
