package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-json-experiment/json/v1"

	apiclient "github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
)

// nodeAPI calls a benchmarked node through package client, with jobs
// converted to the engine's type, whose results the rows report.
type nodeAPI struct{ c *apiclient.Client }

// newNodeAPI returns the API of a node without auth at addr, with a
// timeout that fits the long calls of a benchmark.
func newNodeAPI(addr string) (nodeAPI, error) {
	c, err := apiclient.New("http://"+addr, apiclient.Options{HTTPClient: &http.Client{Timeout: 10 * time.Minute}})
	return nodeAPI{c}, err
}

// apply applies a repo file and returns the jobs it started.
func (a nodeAPI) apply(file string, content []byte) ([]engine.Job, error) {
	res, err := a.c.Apply(context.Background(), file, content)
	if err != nil {
		return nil, err
	}
	jobs := make([]engine.Job, len(res.Jobs))
	for i := range res.Jobs {
		if jobs[i], err = engineJob(&res.Jobs[i], nil); err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

func (a nodeAPI) materialize(ws, view string, req apiclient.MaterializationRequest) (engine.Job, error) {
	return engineJob(a.c.Materialize(context.Background(), ws, view, req))
}

func (a nodeAPI) deleteKeys(ws, view string, req apiclient.DeleteKeysRequest) (engine.Job, error) {
	return engineJob(a.c.DeleteKeys(context.Background(), ws, view, req))
}

func (a nodeAPI) waitJob(ws, id string, wait time.Duration) (engine.Job, error) {
	return engineJob(a.c.WaitJob(context.Background(), ws, id, wait))
}

// engineJob converts a job the client read through the JSON shape both
// types share (SPEC §6).
func engineJob(j *apiclient.Job, err error) (engine.Job, error) {
	var out engine.Job
	if err != nil {
		return out, err
	}
	data, err := json.Marshal(j)
	if err == nil {
		err = json.Unmarshal(data, &out)
	}
	if err != nil {
		return out, fmt.Errorf("bench: the node's job %s: %w", j.ID, err)
	}
	return out, nil
}
