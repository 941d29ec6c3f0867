//go:build fdb

package fdb

import (
	"fmt"
	"sync"

	fdbapi "github.com/apple/foundationdb/bindings/go/src/fdb"
)

// APIVersion is the FoundationDB API version this package selects: the
// version of the binding's header, supported by foundationdb-clients 7.3.
const APIVersion = 730

// client is the process's FoundationDB client, the one piece of
// package-level state here, because FoundationDB makes it process-global:
// the API version can be selected once per process, the network thread
// (started by the binding when the first database opens) runs until the
// process exits, and the binding caches one database handle per cluster
// file. That cache is not safe for concurrent opens, and Database.Close
// destroys the handle for every holder of the same cluster file, so client
// counts the Stores using each handle and closes it when the last one does.
var client struct {
	api    sync.Once
	apiErr error

	mu  sync.Mutex
	dbs map[string]*sharedDatabase // by cluster file; "" is the default
}

type sharedDatabase struct {
	db   fdbapi.Database
	refs int
}

// selectAPIVersion selects APIVersion once per process.
func selectAPIVersion() error {
	client.api.Do(func() {
		if err := fdbapi.APIVersion(APIVersion); err != nil {
			client.apiErr = fmt.Errorf("fdb: select API version %d (is libfdb_c from foundationdb-clients 7.3 or later installed, "+
				"and did nothing else in this process select another version?): %w", APIVersion, err)
		}
	})
	return client.apiErr
}

// openDatabase returns the process's handle for clusterFile and a function
// that releases this use of it.
func openDatabase(clusterFile string) (fdbapi.Database, func(), error) {
	if err := selectAPIVersion(); err != nil {
		return fdbapi.Database{}, nil, err
	}
	client.mu.Lock()
	defer client.mu.Unlock()
	shared, ok := client.dbs[clusterFile]
	if !ok {
		db, err := fdbapi.OpenDatabase(clusterFile)
		if err != nil {
			return fdbapi.Database{}, nil, fmt.Errorf("fdb: open cluster file %s: %w", describeClusterFile(clusterFile), err)
		}
		if client.dbs == nil {
			client.dbs = make(map[string]*sharedDatabase)
		}
		shared = &sharedDatabase{db: db}
		client.dbs[clusterFile] = shared
	}
	shared.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			client.mu.Lock()
			defer client.mu.Unlock()
			shared.refs--
			if shared.refs == 0 {
				delete(client.dbs, clusterFile)
				shared.db.Close()
			}
		})
	}
	return shared.db, release, nil
}
