package cluster

import (
	"context"
	"errors"
)

// Close leaves the group (revoking and closing every partition's DB),
// then closes the clients and the catalog.
func (n *Node) Close() error {
	n.stop()
	<-n.done
	return n.close()
}

func (n *Node) close() error {
	if n.repoCl != nil {
		n.repoCl.Close()
	}
	if n.cons != nil && n.prod != nil {
		n.announceMu.Lock()
		_, gen := n.cons.GroupMetadata()
		n.produceClaim(context.Background(), claim{Node: n.cfg.NodeID, URL: n.cfg.Advertise, Generation: gen})
		n.announceMu.Unlock()
	}
	if n.memb != nil {
		n.memb.Close()
	}
	if n.cons != nil {
		n.cons.Close() // leaves the group: revoked closes the partitions
	}
	if n.prod != nil {
		n.prod.Close()
	}
	n.mu.Lock()
	var errs []error
	for p, pt := range n.parts {
		errs = append(errs, pt.db.Close())
		delete(n.parts, p)
	}
	n.mu.Unlock()
	if n.catalog != nil {
		errs = append(errs, n.catalog.Close())
	}
	return errors.Join(errs...)
}
