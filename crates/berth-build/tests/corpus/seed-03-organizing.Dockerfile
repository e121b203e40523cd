FROM node:20

# `node` user is precreated by node image (and it's running processes)
RUN useradd -ms /bin/bash sherzod

USER sherzod

# cd to that directory
WORKDIR /home/sherzod/code

# used COPY not ADD, because ADD has additional logic
# like adding remote urls, unzipping files, etc. which almost never you need
COPY --chown=sherzod index.js .

CMD ["node", "index.js"]
