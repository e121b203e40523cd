# escape=`
FROM mcr.microsoft.com/windows/servercore
WORKDIR C:\app
COPY testfile.txt c:\
RUN dir c:\ `
    && echo done `

    && echo after-empty-line
ENV PATH="C:\bin;${PATH}"
