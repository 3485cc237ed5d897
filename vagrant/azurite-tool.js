#!/usr/bin/env node
// Small Azurite helper for vagrant/e2e.sh: the product never creates containers, and the check
// must read blobs back through an independent client (Microsoft's @azure/storage-blob SDK).
//
//   azurite-tool.js create CONTAINER...        create containers (existing ones are fine)
//   azurite-tool.js list CONTAINER [PREFIX]    one JSON line per blob: name, size, sha256 of the
//                                              body, metadata (downloads every blob)
//   azurite-tool.js get CONTAINER NAME         the blob's body on stdout
//   azurite-tool.js cat CONTAINER [PREFIX]     the bodies of every blob, one after the other
//
// Endpoint: $AZURITE_BLOB_URL (default http://127.0.0.1:10000/devstoreaccount1), account
// devstoreaccount1 with Azurite's public, well-known development key.
'use strict';
const crypto = require('crypto');
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');

const ACCOUNT = 'devstoreaccount1';
// Azurite's documented development key (public; it only opens the local emulator).
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const URL_BASE = process.env.AZURITE_BLOB_URL || `http://127.0.0.1:10000/${ACCOUNT}`;

function service() {
  return new BlobServiceClient(URL_BASE, new StorageSharedKeyCredential(ACCOUNT, DEV_KEY));
}

async function body(blobClient) {
  const res = await blobClient.download(0);
  const chunks = [];
  for await (const c of res.readableStreamBody) chunks.push(c);
  return Buffer.concat(chunks);
}

async function main(argv) {
  const [cmd, ...args] = argv;
  const svc = service();
  if (cmd === 'create' && args.length > 0) {
    for (const c of args) await svc.getContainerClient(c).createIfNotExists();
  } else if (cmd === 'list' && (args.length === 1 || args.length === 2)) {
    const container = svc.getContainerClient(args[0]);
    const opts = { includeMetadata: true };
    if (args[1]) opts.prefix = args[1];
    for await (const b of container.listBlobsFlat(opts)) {
      const data = await body(container.getBlobClient(b.name));
      const sha256 = crypto.createHash('sha256').update(data).digest('hex');
      process.stdout.write(JSON.stringify({
        name: b.name, size: b.properties.contentLength, sha256, metadata: b.metadata || {},
      }) + '\n');
    }
  } else if (cmd === 'cat' && (args.length === 1 || args.length === 2)) {
    const container = svc.getContainerClient(args[0]);
    for await (const b of container.listBlobsFlat(args[1] ? { prefix: args[1] } : {})) {
      process.stdout.write(await body(container.getBlobClient(b.name)));
    }
  } else if (cmd === 'get' && args.length === 2) {
    process.stdout.write(await body(svc.getContainerClient(args[0]).getBlobClient(args[1])));
  } else {
    process.stderr.write('usage: azurite-tool.js create CONTAINER... | list CONTAINER [PREFIX] | cat CONTAINER [PREFIX] | get CONTAINER NAME\n');
    process.exit(2);
  }
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`azurite-tool: ${e.statusCode ? `HTTP ${e.statusCode} ` : ''}${e.code || ''} ${e.message.split('\n')[0]}\n`);
  process.exit(1);
});
