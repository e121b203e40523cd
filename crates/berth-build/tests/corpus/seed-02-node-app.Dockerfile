FROM node:20

COPY index.js index.js

CMD ["node", "index.js"]
