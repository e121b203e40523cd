FROM node:20

# There're some things which run when building, others when executing
# CMD runs only when executing
CMD ["node", "-e", "console.log(\"Hello there\")"]
