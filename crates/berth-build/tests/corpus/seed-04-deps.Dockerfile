FROM node:20

USER node

WORKDIR /home/node/code

COPY --chown=node . .

# clear install, removes node_modules and installs 
RUN npm ci

CMD ["node", "index.js"]
