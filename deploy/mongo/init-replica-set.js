// Run by the mongo-init job: initiates rs0 with the three members once; later runs find it initiated.
try {
  rs.status();
  print("replica set rs0 already initiated");
} catch (error) {
  if (error.codeName !== "NotYetInitialized") throw error;
  rs.initiate({
    _id: "rs0",
    members: [
      { _id: 0, host: "mongo1:27017" },
      { _id: 1, host: "mongo2:27017" },
      { _id: 2, host: "mongo3:27017" },
    ],
  });
  print("replica set rs0 initiated");
}
// The gateways start only once a primary is elected.
while (!db.hello().primary) sleep(500);
